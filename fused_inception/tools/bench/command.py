"""``python -m fused_inception bench``: eager, channels_last, torch.compile, CUDA graph and fused
GoogLeNet side by side, per Inception block (3a..5b) and for the whole network.

Interface for the CLI dispatcher: ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args) -> int``.

What is timed (one *case* = scope x mode x dtype x batch; every method of a case gets the same
weights and the same preallocated inputs):

* scope: one Inception block alone (its input shape is the one it sees in the network at
  ``--size``), the stem alone (``stem``: conv1 to maxpool2; its fused methods time the stem as
  ``fuse()`` leaves it in the whole network, fused units in the torchvision variant; the paper
  variant's stem and fused methods under torch.compile are not timed, and the report's notes say
  why), or the whole network (``net``);
* mode: ``infer`` (eval, no grad); ``train`` (train mode: forward + backward + SGD step; the whole
  network with its aux heads and ``GoogLeNetLoss``, a block with a fixed upstream gradient);
  ``finetune`` (the same step with BatchNorm frozen, i.e. eval mode). Each block runs the tactic
  its call selects (on an untuned GPU ``aten-bn`` in both training modes, ahead of the modules on
  an H200); ``--force-tactic`` runs every block as one tactic, to time the tactics against each
  other;
* methods: ``eager`` (NCHW), ``eager-cl`` (channels_last), ``compile`` (torch.compile, mode
  ``max-autotune`` on a GPU), ``cudagraph`` (eager replayed from a CUDA graph; the input is copied
  into the graph's static input first), ``fused`` / ``fused-cl`` (``fuse(model)``, NCHW /
  channels_last input), ``fused-cudagraph``, ``fused-compile``.

Timing: on a GPU, CUDA events around every call after warm-up; on the CPU, ``time.perf_counter``.
Each call takes the next of several preallocated inputs (on a GPU, enough of them to fill
``--rotate-mb``, at most MAX_INPUTS), so a warm cache is not what is measured; a case whose inputs
add up to less than twice the L2 (batch 1 of the 7x7 blocks: the MAX_INPUTS cap) is labelled
warm-cache in the report (``cases.warm_cache``). Reported: median ms with p20-p80, img/s
(batch / median), the fused methods' speedups against each baseline, and peak memory of one call
beyond what was resident before it (GPU: ``torch.cuda.max_memory_allocated``; CUDA-graph methods:
during capture; CPU: n/a, PyTorch keeps no CPU allocator statistics). Inference outputs of every method are checked against eager's (a sanity check; the
parity command is the numerical evidence).

Each fused block runs a tactic (``fused_inception.tactics``: the Triton kernels, the aten tactic,
aten-bn or its original modules), chosen per call; the report says which each block ran, and why, per case
and fused method. On the CPU this command keeps the Triton interpreter off while it runs, so the
fused blocks run the CPU's default tactics, chosen by a committed measurement (``tactics.CPU_FASTEST``:
the aten tactic in inference, aten-bn in training): those are real CPU figures of eager vs fused,
not of the Triton kernels, and it times a case's methods in interleaved rounds (``timing``). torch.compile is slow to compile on the CPU and is left out there unless
``--compile`` is given.

Modules: this one is the command line (arguments, settings, ``run``); ``cases`` what is timed,
``timing`` how, ``run`` the run and its report dict, ``report`` the text and markdown, ``plot`` the
PNG, ``steps`` gpu_check.sh's step log; ``tools/environment.py`` the environment block.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from fused_inception.dtypes import SHORT_NAMES
from fused_inception.spec import BLOCK_NAMES, VARIANTS
from fused_inception.tactics import TACTICS
from fused_inception.tools.bench.cases import CPU_METHODS, GPU_METHODS, METHODS, MODES, SCOPES
from fused_inception.tools.bench.plot import plot
from fused_inception.tools.bench.report import format_markdown, format_text
from fused_inception.tools.bench.run import CPU_LABEL, empty_report, merge_reports, interpreter_off, run_bench
from fused_inception.tools.bench.steps import read_steps
from fused_inception.tools.files import write_json, write_text
from fused_inception.tools.tables import csv_list

DESCRIPTION = (
    "Time eager (NCHW, channels_last), torch.compile, CUDA graph and fused GoogLeNet side by side, per "
    "Inception block and whole network, inference and training step, per dtype and batch; img/s, median ms "
    "with p20-p80, speedups, peak memory, the tactic each fused block ran; --json, --markdown, --plot. On the "
    "CPU the fused blocks run their CPU tactics (aten in inference, aten-bn in training, by a measured "
    "default), not the Triton kernels, and a case's methods are timed in interleaved rounds."
)

# (size, batches, dtypes, warmup, repeat, rep_ms, rotate_mb, compile mode)
GPU_DEFAULTS = dict(size=224, batch="1,32,256", dtypes="fp32,fp16,bf16", warmup=10, repeat=10, rep_ms=100.0,
                    rotate_mb=192.0, compile_mode="max-autotune", threads=None)
# one CPU thread: with two, a busy machine (another process on a core) stalls every op at OpenMP
# barriers (measured here: 12 ms -> 1100 ms per GoogLeNet forward)
CPU_DEFAULTS = dict(size=64, batch="1,2", dtypes="fp32", warmup=2, repeat=5, rep_ms=300.0, rotate_mb=0.0,
                    compile_mode="default", threads=1)


def resolve_settings(args: argparse.Namespace) -> dict:
    """Command-line arguments with the device's defaults filled in (ValueError on bad values)."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but CUDA is not available")
    d = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS

    def pick(name: str):
        value = getattr(args, name, None)
        return d[name] if value is None else value

    scopes_arg = args.scopes or "all"
    scopes: list[str] = []
    for s in csv_list(scopes_arg):
        scopes += {"all": list(SCOPES), "blocks": list(BLOCK_NAMES)}.get(s, [s])
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise ValueError(f"unknown scope(s) {bad}; expected some of {list(SCOPES)}, 'blocks' or 'all'")
    modes = csv_list(args.modes or "infer,train")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; expected some of {list(MODES)}")
    dtypes = csv_list(pick("dtypes"))
    bad = [x for x in dtypes if x not in SHORT_NAMES]
    if bad:
        raise ValueError(f"unknown dtype(s) {bad}; expected some of {list(SHORT_NAMES)}")
    batches = [int(b) for b in csv_list(pick("batch"))]
    if not batches or min(batches) < 1:
        raise ValueError("--batch needs positive integers")
    notes: list[str] = []
    if args.methods:
        methods = csv_list(args.methods)
    else:
        methods = list(GPU_METHODS if device == "cuda" else CPU_METHODS)
        if device == "cpu":
            if getattr(args, "compile", False):
                methods.insert(2, "compile")
            else:
                notes.append("torch.compile left out on the CPU (slow to compile there); --compile includes it")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; expected some of {list(METHODS)}")
    if device == "cpu":
        graphs = [m for m in methods if METHODS[m].wrap == "cudagraph"]
        if graphs:
            notes.append(f"{', '.join(graphs)} need a GPU: left out")
            methods = [m for m in methods if m not in graphs]
        if any(x != "fp32" for x in dtypes):
            notes.append("half precision on the CPU: PyTorch's CPU kernels, slow and not representative")
    if not any(METHODS[m].fused for m in methods) or not any(not METHODS[m].fused for m in methods):
        notes.append("no fused method or no baseline among --methods: no speedups")
    threads = pick("threads")
    if threads is not None and int(threads) < 1:
        raise ValueError("--threads must be >= 1")
    size = int(pick("size"))
    if size < 32:
        raise ValueError("--size must be at least 32 (GoogLeNet's five stride-2 stages)")
    return {
        "device": device, "variant": args.variant, "size": size, "batches": batches, "dtypes": dtypes,
        "scopes": scopes, "modes": modes, "methods": methods,
        "warmup": int(pick("warmup")), "repeat": int(pick("repeat")), "rep_ms": float(pick("rep_ms")),
        "rotate_mb": float(pick("rotate_mb")), "compile_mode": pick("compile_mode"),
        "seed": args.seed, "max_seconds": args.max_seconds, "tf32": bool(args.tf32),
        "cudnn_benchmark": bool(args.cudnn_benchmark), "notes": notes,
        "threads": None if threads is None else int(threads),
        "force_tactic": args.force_tactic,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = CPU_DEFAULTS
    gg = GPU_DEFAULTS
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when available, else cpu")
    parser.add_argument("--variant", choices=VARIANTS, default="torchvision",
                        help="GoogLeNet variant (default: torchvision)")
    parser.add_argument("--size", type=int, default=None,
                        help=f"network input H = W; blocks get their in-network shape at it "
                             f"(default: {gg['size']} on a GPU, {g['size']} on the CPU)")
    parser.add_argument("--batch", default=None,
                        help=f"comma-separated batch sizes (default: {gg['batch']} on a GPU, {g['batch']} on the CPU)")
    parser.add_argument("--dtypes", default=None,
                        help=f"comma-separated of fp32, fp16, bf16 (default: {gg['dtypes']} on a GPU, "
                             f"{g['dtypes']} on the CPU)")
    parser.add_argument("--scopes", default=None,
                        help="comma-separated of stem, 3a..5b, net, 'blocks', 'all' (default: all)")
    parser.add_argument("--modes", default=None,
                        help=f"comma-separated of {', '.join(MODES)} (default: infer,train)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated of {', '.join(METHODS)} (default: {','.join(GPU_METHODS)} on a "
                             f"GPU, {','.join(CPU_METHODS)} on the CPU)")
    parser.add_argument("--compile", action="store_true",
                        help="CPU: also time torch.compile (left out by default: slow to compile there)")
    parser.add_argument("--compile-mode", default=None,
                        help=f"torch.compile mode (default: {gg['compile_mode']} on a GPU, {g['compile_mode']} on "
                             "the CPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"warm-up calls per method (default: {gg['warmup']} GPU, {g['warmup']} CPU)")
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"minimum timed calls per method (default: {gg['repeat']} GPU, {g['repeat']} CPU)")
    parser.add_argument("--rep-ms", type=float, default=None,
                        help=f"time to measure per method, ms (default: {gg['rep_ms']:.0f} GPU, {g['rep_ms']:.0f} CPU)")
    parser.add_argument("--rotate-mb", type=float, default=None,
                        help=f"preallocate enough inputs to cycle through this many MB (2 at least; "
                             f"default: {gg['rotate_mb']:.0f} on a GPU, 2 inputs on the CPU)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                        help="GPU fp32: allow TF32 in cuDNN, cuBLAS and the fused kernels (default: on, "
                             "PyTorch's conv default)")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="GPU: torch.backends.cudnn.benchmark for the eager baselines (default: on)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads while timing (default: 1 on the CPU, where more threads stall "
                             "at OpenMP barriers whenever another process holds a core; unchanged on a GPU)")
    parser.add_argument("--force-tactic", choices=TACTICS, default=None,
                        help="run every fused block as this tactic (selection.force_tactic) instead of the "
                             "selected one, to time the tactics against each other (in BN training, triton "
                             "and aten both run the BN-training op)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed (default: 0)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop starting new measurements after this many seconds (the rest are "
                             "recorded as skipped)")
    parser.add_argument("--json", metavar="PATH",
                        help="write every raw timing, median and the environment as JSON (rewritten after each method)")
    parser.add_argument("--markdown", metavar="PATH", help="write the results as a markdown report")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of img/s against batch (needs matplotlib)")
    parser.add_argument("--merge", nargs="*", metavar="JSON",
                        help="no timing: merge these bench JSON files into one report (then --json, "
                             "--markdown, --plot write it); with no file, a report of the environment, "
                             "--steps and --parity-json alone")
    parser.add_argument("--parity-json", metavar="PATH",
                        help="with --markdown: append the table of a `parity --json` file")
    parser.add_argument("--steps", metavar="PATH",
                        help="with --merge: gpu_check.sh's step-status file (see fused_inception.tools.bench.steps) "
                             "into the JSON and the markdown")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


def run(args: argparse.Namespace) -> int:
    """The bench subcommand; 0 on success, 1 if a method failed or a check mismatched, 2 on bad input."""
    if getattr(args, "plot", None):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("error: --plot needs matplotlib: pip install matplotlib (or pip install "
                  "'fused-inception[bench]')", file=sys.stderr)
            return 2
    if getattr(args, "merge", None) is not None:
        try:
            reports = [json.loads(Path(p).read_text()) for p in args.merge]
            report = merge_reports(reports) if reports else empty_report()
            if getattr(args, "steps", None):
                report["steps"] = read_steps(args.steps)
        except (OSError, ValueError, KeyError) as err:
            print(f"error: cannot merge: {err}", file=sys.stderr)
            return 2
    else:
        try:
            settings = resolve_settings(args)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if settings["device"] == "cpu":
            print(f"bench on the CPU: {CPU_LABEL}", flush=True)
        for note in settings["notes"]:
            print(f"note: {note}", flush=True)
        n = len(settings["scopes"]) * len(settings["modes"]) * len(settings["dtypes"]) * len(settings["batches"])
        print(f"{n} cases x {len(settings['methods'])} methods ({', '.join(settings['methods'])})", flush=True)
        with interpreter_off() as was_interpreted:
            if was_interpreted and settings["device"] == "cpu":
                print("note: TRITON_INTERPRET=1 was set; it is off while this command times the CPU tactics",
                      flush=True)
            report = run_bench(settings, progress_enabled=not args.no_progress, json_path=args.json)
    print(format_text(report))
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")
    if getattr(args, "markdown", None):
        parity = None
        if getattr(args, "parity_json", None):
            try:
                parity = json.loads(Path(args.parity_json).read_text())
            except (OSError, ValueError) as err:
                print(f"warning: cannot read {args.parity_json}: {err}", file=sys.stderr)
        write_text(args.markdown, format_markdown(report, parity))
        print(f"wrote {args.markdown}")
    if getattr(args, "plot", None):
        if any("img_per_s" in r for c in report["cases"] for r in c["results"].values()):
            plot(report, args.plot)
            print(f"wrote {args.plot}")
        else:
            print(f"no timing to plot: {args.plot} not written")
    bad = [(c["scope"], c["mode"], c["dtype"], c["batch"], m) for c in report["cases"]
           for m, r in c["results"].items() if "error" in r or r.get("check") == "MISMATCH"]
    for b in bad:
        print(f"problem: {'/'.join(map(str, b[:4]))} {b[4]}: see the table", file=sys.stderr)
    return 1 if bad else 0

