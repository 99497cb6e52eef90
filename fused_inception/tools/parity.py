"""``python -m fused_inception parity``: error tables of the fused blocks and the fused GoogLeNet
against a float64 reference, per block (3a..5b) and for the whole network, both variants, per dtype.

Interface for the CLI dispatcher: ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args) -> int``
(0: every row passed; 1: any row failed; 2: could not run).

What is compared
  * per block: a random block (random conv weights and biases, nonzero random BatchNorm running
    statistics and affine parameters, gamma of either sign) fed a signed random input, so BN
    folding, zero padding of the reduced tensor and -inf padding of the max-pool all matter. The
    fused block is ``fuse(block)`` (a ``FusedInception``) in eval mode in the row's dtype, on CUDA
    when there is one, else on the CPU;
  * whole network: a random GoogLeNet (He-normal convs; BN running statistics measured on random
    input, gamma/beta random) in eval mode, ``fuse(model)``; the eval logits are compared.
  The reference is the same module (the unfused one: ``fused_inception.models``) in float64 on the
  CPU, fed the input already rounded to the row's dtype. Errors: ``||out - ref|| / ||ref||`` and the
  max abs error. A block row passes when every output element is finite and the relative error is
  within ``fused_inception.tolerances.TOLERANCES`` for its dtype. Those are one-layer tolerances; through
  GoogLeNet's ~60 layers any implementation's rounding error grows with depth (measured, CPU,
  64x64: the unfused network's own logits are off by 1.3e-5 in fp32 and 2.3e-2 in fp16, growing
  about 1.4x per block). So a whole-network row passes when its output is finite and its relative
  error is within the larger of the dtype's tolerance and BASELINE_FACTOR (2) times the error of
  the unfused network in the same dtype on the same device: swapping in the fused blocks may not
  add more error than PyTorch's own network has. A wrong branch order, stale folded weights or a
  layout bug give errors of order 1, far outside either bound. The fused block allocates its output inside
  the op, so an element the kernels never wrote shows up as non-finite only by chance; the test
  suite (tests/kernels/test_kernels.py) runs the kernels on NaN-poisoned outputs. The ``eager rel`` column
  is the unfused module in the same dtype and device against the same reference: how much error
  the dtype itself brings (part of the whole-network bound, context for the blocks).

Which tactic runs
  Each fused block runs the tactic its call selects (``fused_inception.selection``): on a GPU the
  winner its tuned file records, else the Triton kernels (sm_80 and newer); under the CPU's
  interpreter the Triton kernels. Every row says which tactic each of its blocks ran, and why
  (``tactics`` in the JSON, the ``tactic`` column and the reasons under the table).

Where the kernels run
  On CUDA, the Triton kernels (unless a tuned file records another tactic). Without CUDA, the
  Triton interpreter on the CPU: it must be on
  (``TRITON_INTERPRET=1``) before triton is imported, and importing fused_inception imports
  triton. So when this command finds no GPU and kernels that were not built for the interpreter,
  it runs itself again in a fresh process with ``TRITON_INTERPRET=1`` (``--in-process`` disables
  that and fails instead). The interpreter computes fp32 dots in IEEE and returns garbage for bf16
  ``tl.dot`` (docs/DESIGN.md §6), so the CPU defaults are fp32 and fp16, at small sizes (it runs
  one program at a time: a block costs seconds whatever its size up to one 8x8 tile).

dtype keys: ``fp32`` (IEEE: TF32 off for cuDNN and matmul), ``tf32`` (fp32 with
``torch.backends.cudnn.allow_tf32`` and ``cuda.matmul.allow_tf32`` on; GPU only), ``fp16``,
``bf16``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from fused_inception.dtypes import COMPUTE_SETTINGS
from fused_inception.forward import interpreter_enabled
from fused_inception.kernels import pointwise_pool, reduce_conv
from fused_inception.models.randomize import random_block, random_googlenet
from fused_inception.module import FusedInception
from fused_inception.patching import fuse
from fused_inception.selection import force_tactic
from fused_inception.spec import BLOCK_NAMES, GOOGLENET_BLOCKS, VARIANTS, googlenet_spec
from fused_inception.tactics import TACTICS
from fused_inception.tolerances import BASELINE_FACTOR, TOLERANCES, compare, compare_with_baseline, tolerance_key
from fused_inception.tools.cli import command_line
from fused_inception.tools.environment import environment
from fused_inception.tools.files import write_json, write_text
from fused_inception.tools.tables import csv_list
from fused_inception.tools.tactic_report import ran_tactics, tactic_summary

DESCRIPTION = (
    "Error table of the fused kernels against a float64 reference: per Inception block (3a..5b) "
    "and the whole GoogLeNet (eval logits), both variants, per dtype; exit code 1 on any failure. "
    "Without a GPU the kernels run in the Triton interpreter (small sizes, fp32 and fp16)."
)

GPU_DTYPES = ("fp32", "tf32", "bf16", "fp16")
CPU_DTYPES = ("fp32", "fp16")
# defaults: (block spatial size or None for the native one, block batch, net size, net batch)
GPU_SIZES = (None, 8, 224, 4)
CPU_SIZES = (7, 1, 64, 1)
SCHEMA = "fused_inception.parity/1"


# ------------------------------------------------------------------ where the kernels run

def kernels_interpreted() -> bool:
    """True when the Triton kernels in this process were built for the interpreter."""
    from triton.runtime.interpreter import InterpretedFunction

    return (isinstance(pointwise_pool._pointwise_pool_kernel, InterpretedFunction)
            and isinstance(reduce_conv._reduce_conv_kernel, InterpretedFunction))


def kernel_path(device: str) -> str:
    """A label for where the fused kernels run on ``device`` in this process."""
    if device == "cuda":
        return "Triton kernels (CUDA)"
    if interpreter_enabled() and kernels_interpreted():
        return "Triton interpreter (CPU)"
    return "CPU tactics, interpreter off (Triton kernels not checked)"


@contextlib.contextmanager
def tf32_allowed(allowed: bool) -> Iterator[None]:
    """cuDNN and cuBLAS TF32 switched on or off for the duration."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


# ------------------------------------------------------------------ the checks

def check_one(reference: nn.Module, fused_cpu: nn.Module, x64: torch.Tensor, dtype_key: str, device: str,
              channels_last: bool = False, whole_network: bool = False, ref_cache: dict | None = None,
              scope: str = "block") -> dict:
    """Run ``fused_cpu`` (a fused copy of ``reference``, any dtype, on the CPU) in the row's dtype on
    ``device`` and compare with ``reference`` (float64, CPU) on ``x64`` rounded to that dtype. The
    result says which tactic each fused block ran, and why (``tactics``; ``scope`` names a lone
    block).

    A block passes within the dtype's tolerance; the whole network within the larger of that and
    BASELINE_FACTOR x the unfused network's own error in the same dtype (see the module docstring).
    """
    dtype, precision = COMPUTE_SETTINGS[dtype_key]
    tf32 = precision == "tf32"
    tol_key = tolerance_key(dtype, tf32)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x64.to(dtype)
    ref = None if ref_cache is None else ref_cache.get(dtype)
    if ref is None:
        with torch.no_grad():
            ref = reference(x.double())
        if ref_cache is not None:
            ref_cache[dtype] = ref  # fp32 and tf32 rows share it, and both layouts
    x_dev = x.to(device).contiguous(memory_format=fmt)
    with torch.no_grad(), tf32_allowed(tf32):
        eager = copy.deepcopy(reference).to(device=device, dtype=dtype, memory_format=fmt).eval()
        try:
            eager_out = eager(x_dev)
        except (RuntimeError, NotImplementedError) as err:
            # e.g. PyTorch's CPU LocalResponseNorm (avg_pool3d) has no float16 kernel: the layers
            # around the fused blocks cannot run in this dtype here, so there is nothing to check
            return {"skipped": f"the unfused module does not run in {dtype_key} on {device}: "
                               f"{type(err).__name__}: {err}"[:300], "passed": None}
        del eager
        fused = copy.deepcopy(fused_cpu).to(device=device, dtype=dtype, memory_format=fmt).eval()
        t0 = time.perf_counter()
        out = fused(x_dev)
        if device == "cuda":
            torch.cuda.synchronize()
        fused_s = time.perf_counter() - t0
    eager_result = compare(eager_out, ref, tol_key)
    result = compare_with_baseline(out, ref, eager_out, tol_key) if whole_network else compare(out, ref, tol_key)
    tolerance, criterion = result.tolerance, f"rel <= {TOLERANCES[tol_key]:.0e} ({tol_key})"
    if whole_network:
        criterion = (f"rel <= max({TOLERANCES[tol_key]:.0e} ({tol_key}), {BASELINE_FACTOR:g} x eager rel "
                     f"{eager_result.rel_error:.2e})")
    passed = result.passed
    return {
        "rel_error": result.rel_error,
        "max_abs_error": result.max_abs_error,
        "tolerance": tolerance,
        "dtype_tolerance": result.tolerance,
        "criterion": criterion,
        "all_finite": result.all_finite,
        "passed": passed,
        "eager_rel_error": eager_result.rel_error,
        "eager_max_abs_error": eager_result.max_abs_error,
        "ref_max_abs": float(ref.abs().max()),
        "fused_seconds": round(fused_s, 3),
        "tactics": ran_tactics(fused, scope),
    }


def _count_fused(model: nn.Module) -> int:
    return sum(isinstance(m, FusedInception) for m in model.modules())


def parity_rows(variants: Sequence[str], blocks: Sequence[str], dtypes: Sequence[str], *, device: str,
                block_size: int | None, block_batch: int, net: bool, net_size: int, net_batch: int,
                layouts: Sequence[str] = ("nchw",), seed: int = 0, progress=None) -> list[dict]:
    """Every row of the parity table (see the module docstring); ``progress(row)`` after each.

    Rows come dtype first (in ``dtypes`` order), then variant, then scope (blocks, then the
    network), then layout: a run cut short keeps every scope of the first dtypes. Each variant's
    modules and inputs are drawn once, from its own seeded generator, whatever the dtypes."""
    rows: list[dict] = []
    path = kernel_path(device)
    # per variant: (scope, unfused module, fused copy, float64 input, whole network?, references by dtype)
    subjects: dict[str, list[tuple]] = {}
    for v_index, variant in enumerate(variants):
        gen = torch.Generator().manual_seed(seed * 1000 + v_index)
        subjects[variant] = []
        for name in blocks:
            channels, native = GOOGLENET_BLOCKS[name]
            hw = block_size or native
            block = random_block(googlenet_spec(name, variant), gen)
            fused = fuse(block)
            if _count_fused(fused) != 1:
                raise RuntimeError(f"fuse() did not swap block {name} ({variant})")
            x64 = torch.randn((block_batch, channels[0], hw, hw), generator=gen, dtype=torch.float64)
            subjects[variant].append((name, block, fused, x64, False, {}))
        if net:
            model = random_googlenet(variant, gen, net_size, aux_logits=False)
            fused = fuse(model)
            swapped = _count_fused(fused)
            if swapped != len(GOOGLENET_BLOCKS):
                raise RuntimeError(f"fuse() swapped {swapped} blocks of the {variant} GoogLeNet, expected 9")
            x64 = torch.randn((net_batch, 3, net_size, net_size), generator=gen, dtype=torch.float64)
            subjects[variant].append(("net", model, fused, x64, True, {}))
    for dtype_key in dtypes:
        for variant in variants:
            for scope, reference, fused, x64, whole, refs in subjects[variant]:
                for layout in layouts:
                    row = {"variant": variant, "scope": scope, "dtype": dtype_key, "layout": layout,
                           "shape": list(x64.shape), "device": device, "path": path}
                    row.update(check_one(reference, fused, x64, dtype_key, device, layout == "cl",
                                         whole_network=whole, ref_cache=refs, scope=scope))
                    rows.append(row)
                    if progress is not None:
                        progress(row)
    return rows


# ------------------------------------------------------------------ formatting

def _fmt_row(row: dict) -> list[str]:
    shape = "x".join(str(d) for d in row["shape"])
    if row.get("skipped"):
        return [row["variant"], row["scope"], row["dtype"], row["layout"], shape, "-", "-", "-", "skipped", "-",
                "-", "-"]
    verdict = "pass" if row["passed"] else "FAIL"
    if not row["all_finite"]:
        verdict += " (non-finite)"
    return [row["variant"], row["scope"], row["dtype"], row["layout"], shape, f"{row['rel_error']:.2e}",
            f"{row['max_abs_error']:.2e}", f"{row['tolerance']:.1e}", verdict, f"{row['eager_rel_error']:.2e}",
            f"{row['fused_seconds']:.1f}", tactic_summary(row.get("tactics") or {}, reasons=False)]


HEADER = ["variant", "scope", "dtype", "layout", "input", "rel err", "max abs", "tol", "result", "eager rel",
          "fused s", "tactic (blocks)"]


def tactic_reasons(rows: Sequence[dict]) -> list[str]:
    """Why the blocks ran the tactics they did: each distinct tactic and reason over the rows once."""
    seen: dict[tuple, None] = {}
    for row in rows:
        for r in (row.get("tactics") or {}).values():
            seen[(r["tactic"], r["reason"])] = None
    return [f"{tactic}: {reason}" for tactic, reason in seen]


def format_table(rows: Sequence[dict]) -> str:
    """The rows as an aligned text table."""
    body = [_fmt_row(r) for r in rows]
    widths = [max(len(x[i]) for x in (HEADER, *body)) for i in range(len(HEADER))]
    left = 5

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:<{w}}" if i < left else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(HEADER), "-" * len(line(HEADER)), *(line(b) for b in body)])


def format_markdown(report: dict) -> str:
    """The report (``run``'s JSON) as a markdown table with its environment."""
    env = report["environment"]
    lines = [f"### Parity against float64 ({env.get('device_name', '?')}, {report['path']})", "",
             f"torch {env.get('torch')}, triton {env.get('triton')}, CUDA {env.get('cuda') or 'n/a'}, "
             f"cuDNN {env.get('cudnn') or 'n/a'}, driver {env.get('driver') or 'n/a'}, commit "
             f"{env.get('git_commit') or 'unknown'}, source hash {env.get('source_hash')}, {env.get('date')}", "",
             "| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(_fmt_row(r)) + " |" for r in report["rows"]]
    failed = sum(r["passed"] is False for r in report["rows"])
    skipped = [r for r in report["rows"] if r.get("skipped")]
    planned = report.get("planned_rows", len(report["rows"]))
    incomplete = "" if report.get("complete", True) else f" Incomplete: {len(report['rows'])} of {planned} rows ran."
    lines += ["", f"{len(report['rows'])} rows, {failed} failed, {len(skipped)} skipped.{incomplete}"]
    lines += [f"- skipped {r['variant']} {r['scope']} {r['dtype']}: {r['skipped']}" for r in skipped]
    lines += ["", "Tactics (why each ran):"] + [f"- {line}" for line in tactic_reasons(report["rows"])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated GoogLeNet variants (default: {','.join(VARIANTS)})")
    parser.add_argument("--blocks", default="all",
                        help="comma-separated blocks of 3a..5b, 'all' (default) or 'none'")
    parser.add_argument("--net", action=argparse.BooleanOptionalAction, default=True,
                        help="also check the whole network's eval logits (default: on)")
    parser.add_argument("--dtypes", default=None,
                        help=f"comma-separated of {','.join(COMPUTE_SETTINGS)} (default: {','.join(GPU_DTYPES)} on a "
                             f"GPU, {','.join(CPU_DTYPES)} on the CPU)")
    parser.add_argument("--layouts", default="nchw",
                        help="comma-separated input layouts: nchw, cl (channels_last) (default: nchw)")
    parser.add_argument("--block-size", type=int, default=None,
                        help=f"blocks' input H = W (default: native 28/14/7 on a GPU, {CPU_SIZES[0]} on the CPU)")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"blocks' batch (default: {GPU_SIZES[1]} on a GPU, {CPU_SIZES[1]} on the CPU)")
    parser.add_argument("--net-size", type=int, default=None,
                        help=f"network input H = W (default: {GPU_SIZES[2]} on a GPU, {CPU_SIZES[2]} on the CPU)")
    parser.add_argument("--net-batch", type=int, default=None,
                        help=f"network batch (default: {GPU_SIZES[3]} on a GPU, {CPU_SIZES[3]} on the CPU)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of weights and inputs (default: 0)")
    parser.add_argument("--tactic", choices=("auto",) + TACTICS, default="auto",
                        help="run every fused block as this tactic (e.g. triton: check the kernels even where a "
                             "tuned file records another tactic); default auto: the tactic each call selects")
    parser.add_argument("--json", metavar="PATH",
                        help="write the rows and the environment as JSON to PATH (rewritten after every row, "
                             "'complete': false until the last)")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as markdown to PATH")
    parser.add_argument("--jobs", type=int, default=None,
                        help="CPU: interpreter processes, one per variant (default: 2 when there are 2 CPUs)")
    parser.add_argument("--in-process", action="store_true",
                        help="CPU: run here, never in fresh processes with TRITON_INTERPRET=1 (needs it set "
                             "before fused_inception is imported)")
    # internal: the whole namespace of a re-run or a worker (see _child_command)
    parser.add_argument("--namespace-json", help=argparse.SUPPRESS)


def _resolve(args: argparse.Namespace, cuda: bool) -> dict:
    variants = csv_list(args.variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variant(s) {bad}; expected {list(VARIANTS)}")
    blocks = {"all": list(BLOCK_NAMES), "none": []}.get(args.blocks, None)
    if blocks is None:
        blocks = csv_list(args.blocks)
        bad = [b for b in blocks if b not in BLOCK_NAMES]
        if bad:
            raise ValueError(f"unknown block(s) {bad}; expected some of {list(BLOCK_NAMES)}")
    dtypes = csv_list(args.dtypes) if args.dtypes else list(GPU_DTYPES if cuda else CPU_DTYPES)
    bad = [d for d in dtypes if d not in COMPUTE_SETTINGS]
    if bad:
        raise ValueError(f"unknown dtype(s) {bad}; expected some of {list(COMPUTE_SETTINGS)}")
    layouts = csv_list(args.layouts)
    bad = [x for x in layouts if x not in ("nchw", "cl")]
    if bad:
        raise ValueError(f"unknown layout(s) {bad}; expected nchw, cl")
    defaults = GPU_SIZES if cuda else CPU_SIZES
    return {
        "variants": variants, "blocks": blocks, "dtypes": dtypes, "layouts": layouts,
        "block_size": args.block_size if args.block_size is not None else defaults[0],
        "block_batch": args.batch if args.batch is not None else defaults[1],
        "net": bool(args.net),
        "net_size": args.net_size if args.net_size is not None else defaults[2],
        "net_batch": args.net_batch if args.net_batch is not None else defaults[3],
    }


def _namespace_json(args: argparse.Namespace, **changes) -> str:
    namespace = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}
    namespace.update(changes)
    return json.dumps(namespace)


def _child_command(args: argparse.Namespace, **changes) -> list[str]:
    return command_line("parity", "--namespace-json", _namespace_json(args, in_process=True, **changes))


def _rerun_with_interpreter(args: argparse.Namespace) -> int:
    """Run this command again in a fresh process whose triton is imported with TRITON_INTERPRET=1."""
    print("parity: no GPU and the kernels were built without the Triton interpreter; running again in a "
          "fresh process with TRITON_INTERPRET=1", flush=True)
    return subprocess.call(_child_command(args), env=dict(os.environ, TRITON_INTERPRET="1"))


def _rows_in_workers(args: argparse.Namespace, variants: Sequence[str]) -> list[dict] | None:
    """CPU: one interpreter process per variant, in parallel; their rows in variant order (None if
    a worker failed to produce its rows)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    print(f"parity: {len(variants)} interpreter processes in parallel (one per variant; --jobs 1: one "
          "process)", flush=True)
    with tempfile.TemporaryDirectory(prefix="fi_parity_") as tmp:
        procs = []
        for v in variants:
            out = Path(tmp) / f"{v}.json"
            cmd = _child_command(args, variants=v, rows_out=str(out), json=None, markdown=None, jobs=1)
            procs.append((v, out, subprocess.Popen(cmd, env=env)))
        rows: list[dict] = []
        ok = True
        for v, out, proc in procs:
            proc.wait()
            if proc.returncode not in (0, 1) or not out.exists():
                print(f"error: the parity worker for the {v} variant exited with {proc.returncode}", file=sys.stderr)
                ok = False
                continue
            rows += json.loads(out.read_text())
    return rows if ok else None


def run(args: argparse.Namespace) -> int:
    """The parity subcommand: table, summary, optional JSON/markdown; 1 if any row fails."""
    if getattr(args, "namespace_json", None):
        args = argparse.Namespace(**json.loads(args.namespace_json))
    cuda = torch.cuda.is_available()
    try:
        settings = _resolve(args, cuda)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    rows_out = getattr(args, "rows_out", None)  # internal: a worker of _rows_in_workers
    jobs = getattr(args, "jobs", None) or min(2, os.cpu_count() or 1)
    parallel = (not cuda and rows_out is None and jobs > 1 and len(settings["variants"]) > 1
                and not getattr(args, "in_process", False))
    if not cuda:
        stop = _prepare_cpu_run(args, settings, worker=rows_out is not None, parallel=parallel)
        if stop is not None:
            return stop

    n_rows = len(settings["variants"]) * (len(settings["blocks"]) + settings["net"]) \
        * len(settings["dtypes"]) * len(settings["layouts"])
    t0 = time.perf_counter()
    if parallel:
        print(f"parity: {n_rows} rows on the CPU (Triton interpreter); reference: the same modules in float64 "
              "on the CPU", flush=True)
        rows = _rows_in_workers(args, settings["variants"])
        if rows is None:
            return 2
        # the workers' rows come variant by variant: back to parity_rows' order (dtype first)
        rows.sort(key=lambda r: (settings["dtypes"].index(r["dtype"]), settings["variants"].index(r["variant"])))
    else:
        rows = _rows_here(args, settings, device, n_rows, t0)
        if rows is None:
            return 2
        if rows_out:
            Path(rows_out).write_text(json.dumps(rows))
            return 0
    elapsed = time.perf_counter() - t0
    path = rows[0]["path"] if rows else kernel_path(device)
    failed = _print_summary(rows, elapsed)
    report = _report(rows, environment(device), path, settings, args.seed, n_rows, elapsed, complete=True)
    if getattr(args, "json", None):
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if getattr(args, "markdown", None):
        write_text(args.markdown, format_markdown(report))
        print(f"wrote {args.markdown}")
    return 1 if failed else 0


def _prepare_cpu_run(args: argparse.Namespace, settings: dict, *, worker: bool, parallel: bool) -> int | None:
    """Without a GPU: warn about the rows the CPU cannot check as on a GPU, and make sure the
    kernels run in the Triton interpreter here (unless ``parallel``: the workers do). None: go on
    in this process; else the exit code to return (2: cannot; or the code of this command run
    again in a fresh interpreter process)."""
    if "bf16" in settings["dtypes"]:
        print("warning: the Triton interpreter cannot run a bf16 tl.dot correctly (garbage or an "
              "error, docs/DESIGN.md §6); "
              "bf16 rows on the CPU are expected to fail", file=sys.stderr)
    if "tf32" in settings["dtypes"] and not worker:
        print("note: tf32 on the CPU computes IEEE fp32 (the interpreter and CPU convs have no TF32)",
              file=sys.stderr)
    if parallel:
        return None
    if not kernels_interpreted():
        if getattr(args, "in_process", False):
            print("error: no GPU, and the Triton kernels in this process were not built for the "
                  "interpreter: set TRITON_INTERPRET=1 before fused_inception (triton) is imported",
                  file=sys.stderr)
            return 2
        return _rerun_with_interpreter(args)
    if not interpreter_enabled():
        os.environ["TRITON_INTERPRET"] = "1"  # the kernels are interpreted: route CPU tensors to them
    return None


def _rows_here(args: argparse.Namespace, settings: dict, device: str, n_rows: int, t0: float) -> list[dict] | None:
    """Every row in this process, in parity_rows' order, each printed as it ends (and, with
    --json, the report rewritten after it, marked incomplete); None after an error (printed)."""
    path = kernel_path(device)
    print(f"parity: {n_rows} rows on {device} ({path}); reference: the same modules in float64 on the CPU",
          flush=True)
    done: list[dict] = []
    env = environment(device) if getattr(args, "json", None) else None

    def progress(row: dict) -> None:
        done.append(row)
        what = (f"skipped ({row['skipped'][:80]})" if row.get("skipped") else
                f"rel {row['rel_error']:.2e} {'pass' if row['passed'] else 'FAIL'}")
        print(f"  [{len(done)}/{n_rows}] {row['variant']} {row['scope']} {row['dtype']} {row['layout']}: "
              f"{what} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if env is not None:  # row by row: a run cut short keeps the rows it finished
            write_json(_report(done, env, path, settings, args.seed, n_rows, time.perf_counter() - t0,
                               complete=False), args.json)

    forced = force_tactic(args.tactic) if getattr(args, "tactic", "auto") != "auto" else contextlib.nullcontext()
    try:
        with forced:
            return parity_rows(settings["variants"], settings["blocks"], settings["dtypes"], device=device,
                               block_size=settings["block_size"], block_batch=settings["block_batch"],
                               net=settings["net"], net_size=settings["net_size"],
                               net_batch=settings["net_batch"], layouts=settings["layouts"], seed=args.seed,
                               progress=progress)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def _print_summary(rows: list[dict], elapsed: float) -> list[dict]:
    """The table, the tolerances, the counts and every skipped and failed row; the failed rows."""
    print()
    print(format_table(rows))
    print(f"tol: a block's is its dtype's ({', '.join(f'{k} {v:.0e}' for k, v in TOLERANCES.items())}); the "
          f"whole network's is the larger of that and {BASELINE_FACTOR:g} x eager rel (the unfused network's "
          "own error in that dtype)")
    print("tactics (why each ran): " + "; ".join(tactic_reasons(rows)))
    failed = [r for r in rows if r["passed"] is False]
    skipped = [r for r in rows if r.get("skipped")]
    print(f"\n{len(rows)} rows in {elapsed:.0f} s: {len(rows) - len(failed) - len(skipped)} passed, "
          f"{len(failed)} failed, {len(skipped)} skipped")
    for r in skipped:
        print(f"skipped {r['variant']} {r['scope']} {r['dtype']} {r['layout']}: {r['skipped']}")
    for r in failed:
        print(f"FAIL {r['variant']} {r['scope']} {r['dtype']} {r['layout']}: rel {r['rel_error']:.3e}, "
              f"needs {r['criterion']}" + ("" if r["all_finite"] else "; non-finite output"))
    return failed


def _report(rows: list[dict], env: dict, path: str, settings: dict, seed: int, n_rows: int, seconds: float,
            complete: bool) -> dict:
    """The JSON document: rows so far (``complete`` False while they are still coming), settings,
    tolerances, environment and summary."""
    failed = sum(r["passed"] is False for r in rows)
    skipped = sum(bool(r.get("skipped")) for r in rows)
    return {"schema": SCHEMA, "environment": env, "path": path, "settings": {**settings, "seed": seed},
            "tolerances": dict(TOLERANCES), "net_eager_factor": BASELINE_FACTOR, "seconds": round(seconds, 1),
            "complete": complete, "planned_rows": n_rows, "rows": list(rows),
            "summary": {"rows": len(rows), "failed": failed, "skipped": skipped}}

