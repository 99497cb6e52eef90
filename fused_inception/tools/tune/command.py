"""``python -m fused_inception tune``: pick each kernel's config on this GPU, then each fused block's
tactic (``tools/tune/tactic_rows.py``), and write the GPU's tuned file
(``kernels/tuned/<gpu-slug>.json``, format in ``kernels/tuned_configs.py``).

For every (kernel, dtype, dot precision) asked for, each candidate config
(``kernels.configs.CANDIDATES``) runs on GoogLeNet blocks at full size (torchvision variant; by
default 3b, 4d and 5b: one block per stage resolution 28, 14, 7) with random weights, signed
inputs and NaN-poisoned outputs. A candidate whose output slices miss the float64 reference by
more than the dtype's tolerance, or that fails to compile or launch, is rejected with the reason,
whatever its time (a row whose default fails is recorded as failed and keeps it); the others are
timed with
``triton.testing.do_bench`` (median; it flushes L2 between repetitions, so a warm cache is not
what is measured), and the candidate with the least total time over the blocks is chosen if it
beats the default by at least MIN_GAIN (3%; otherwise the default stays). The file
records every candidate's per-block median, the rejections, and where it was measured; it is
rewritten after every row, so a run cut short keeps the rows it finished.

Then the tactics: per (block shape, dtype, batch bucket, mode), which of the Triton kernels, the
aten tactic and the original modules is fastest, under the same rules (float64 check first, the
3% margin over the untuned default, the budget; ``tools/tune/tactic_rows.py`` says how); the winners
go into the same file's ``"tactics"`` entries, which a fused block then runs.

Tuning happens only here, offline: the kernels read the checked-in file and never time anything
at run time (so nothing is tuned inside CUDA-graph capture). Timing the Triton interpreter says
nothing about a GPU, so without CUDA this command refuses to run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from fused_inception.dtypes import COMPUTE_SETTINGS, SHORT_NAMES, dtype_name
from fused_inception.folding import params_of_reference_block
from fused_inception.forward import launch_pointwise_branches, launch_reduce_branches, output_memory_format
from fused_inception.kernels.configs import candidate_names, config_by_name
from fused_inception.kernels.tuned_configs import ENV_DIR, SCHEMA, clear_cache, config_fields, gpu_slug
from fused_inception.models.randomize import random_block
from fused_inception.params import InceptionParams
from fused_inception.spec import BLOCK_NAMES, GOOGLENET_BLOCKS, googlenet_spec
from fused_inception.tactics import MODES, TACTICS
from fused_inception.tolerances import ParityResult, compare, poisoned, tolerance_key
from fused_inception.tools.environment import environment
from fused_inception.tools.files import write_text
from fused_inception.tools.tables import csv_list, text_table
from fused_inception.tools.tune.rules import (MIN_GAIN, DeviceUnusable, Timer, candidate_failure, do_bench_timer,
                                             stream_timer, timer_label)
from fused_inception.tools.tune.tactic_rows import (DEFAULT_TACTIC_BATCHES, TacticRow, format_tactic_rows, tactic_rows,
                                                tune_tactics, with_tactics)

DESCRIPTION = ("time every candidate kernel config on this GPU (GoogLeNet blocks, parity-checked against "
               "float64) and write the GPU's tuned-config file for kernels/tuned/")

# one block per stage resolution (28, 14, 7 at 224x224)
DEFAULT_BLOCKS: tuple[str, ...] = ("3b", "4d", "5b")
KERNEL_ORDER: tuple[str, ...] = ("reduce_conv", "pointwise_pool")


@dataclass(frozen=True)
class TuneCase:
    """One block's tensors for tuning: input, folded params, poisoned output buffer and the block's
    float64 output (all on the tuning device; x and out in ``layout``)."""

    block: str
    x: torch.Tensor  # [N, C_in, H, W], the row's dtype
    params: InceptionParams
    out: torch.Tensor  # [N, C_out, H, W]
    ref: torch.Tensor  # [N, C_out, H, W] float64


def make_cases(blocks: Sequence[str], dtype: torch.dtype, batch: int, device: str, layout: torch.memory_format,
               seed: int, hw: int | None = None) -> list[TuneCase]:
    """Random torchvision-variant blocks (BN statistics nonzero, gamma of either sign) with signed
    inputs at their GoogLeNet image size (``hw`` overrides it: small sizes for tests)."""
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for name in blocks:
        spec = googlenet_spec(name, "torchvision")
        size = hw or GOOGLENET_BLOCKS[name][1]
        ref_block = random_block(spec, gen)
        params = params_of_reference_block(ref_block, dtype)
        x64 = torch.randn((batch, spec.in_channels, size, size), generator=gen, dtype=torch.float64)
        x = x64.to(dtype).to(device=device, memory_format=layout)
        with torch.no_grad():
            ref = ref_block.to(device)(x.to(torch.float64))  # the reference sees the rounded input
        params = params.to(device=device)
        out = poisoned(ref.shape, dtype, device, output_memory_format(x))
        cases.append(TuneCase(name, x, params, out, ref))
    return cases


def kernel_call(kernel: str, case: TuneCase, config, precision: str) -> tuple[Callable[[], None], list[slice]]:
    """A call that launches ``kernel`` with ``config`` into case.out exactly as the forward does
    (both reduce_conv branches), and the output channel slices it writes."""
    p = case.params
    (off1, off3, off5, offp), (c1, c3, c5, cp) = p.branch_offsets, p.branch_channels
    if kernel == "pointwise_pool":
        return (lambda: launch_pointwise_branches(case.x, p, case.out, 0, precision, config),
                [slice(off1, off1 + c1), slice(offp, offp + cp)])
    if kernel == "reduce_conv":
        return (lambda: launch_reduce_branches(case.x, p, case.out, 0, precision, config),
                [slice(off3, off3 + c3), slice(off5, off5 + c5)])
    raise ValueError(f"unknown kernel {kernel!r}")


def check_call(call: Callable[[], None], case: TuneCase, slices: list[slice], tol_key: str) -> ParityResult:
    """Poison the output, run the call once, and compare the slices it writes with the reference;
    the worst slice's result."""
    case.out.fill_(float("nan"))
    call()
    results = [compare(case.out[:, s], case.ref[:, s], tol_key) for s in slices]
    failed = [r for r in results if not r.passed]
    return failed[0] if failed else max(results, key=lambda r: r.rel_error)


class DefaultConfigFailed(RuntimeError):
    """The default config of a row fails parity, or fails to compile or launch: a kernel bug, not
    a tuning result (the row cannot be tuned against it)."""


def tune_row(kernel: str, dtype_name: str, precision: str, cases: Sequence[TuneCase], timer: Timer,
             deadline: float = float("inf")) -> dict | None:
    """Check and time every candidate of one (kernel, dtype, precision) on the cases; the choice
    (the fastest in total over the cases, if at least MIN_GAIN faster than the default, else the
    default) as a tuned-file entry, or None when ``deadline`` (time.monotonic) passes first.

    A candidate that fails parity, or raises while compiling, launching or being timed, is
    rejected with the reason (never chosen). Raises DefaultConfigFailed if the default itself does,
    and DeviceUnusable if an error leaves the device unable to run anything more."""
    tol_key = tolerance_key(getattr(torch, dtype_name), tf32=precision == "tf32")
    names = candidate_names(kernel, dtype_name, precision)
    per_block: dict[str, dict[str, float]] = {}
    rejected: dict[str, str] = {}
    for name in names:
        config = config_by_name(kernel, name)
        times: dict[str, float] = {}
        for case in cases:
            if time.monotonic() > deadline:
                return None
            try:
                call, slices = kernel_call(kernel, case, config, precision)
                result = check_call(call, case, slices, tol_key)
                why = None if result.passed else str(result)
                if result.passed:
                    times[case.block] = float(timer(call))
            except Exception as err:  # a compile or launch error: this candidate is out, the row goes on
                why = candidate_failure(err, case.x.device,
                                        f"{kernel} config {name!r} on {case.block} ({dtype_name}, {precision})")
            if why is not None:
                if name == names[0]:
                    raise DefaultConfigFailed(f"default {kernel} config {name!r} fails on {case.block} "
                                              f"({dtype_name}, {precision}): {why}")
                rejected[name] = f"{case.block}: {why}"
                break
        else:
            per_block[name] = times
    totals = {name: sum(t.values()) for name, t in per_block.items()}
    choice = min(totals, key=totals.get)
    if totals[choice] > (1 - MIN_GAIN) * totals[names[0]]:
        choice = names[0]
    return {
        "kernel": kernel, "dtype": dtype_name, "input_precision": precision,
        "config": choice, "fields": config_fields(config_by_name(kernel, choice)),
        "default": names[0], "speedup_vs_default": totals[names[0]] / totals[choice],
        "median_ms": totals, "median_ms_per_block": per_block, "rejected": rejected,
    }


def tune(rows: Sequence[tuple[str, str, str]], blocks: Sequence[str], batch: int, *, device: str, gpu: str,
         timer: Timer, budget_s: float, layout: torch.memory_format = torch.channels_last, seed: int = 0,
         hw: int | None = None, progress: Callable[[str], None] = lambda line: None,
         on_row: Callable[[dict], None] = lambda doc: None) -> dict:
    """Tune (kernel, dtype, precision) rows in order within ``budget_s``; the tuned-file document.
    Rows with a single candidate are skipped; rows the budget does not reach are listed under
    tuned.incomplete; rows whose default config fails (DefaultConfigFailed) under tuned.failed,
    with the reason; an error that leaves the device unusable (DeviceUnusable) fails its row and
    ends tuning, the later rows listed as incomplete. All of those keep their default. ``on_row(doc)`` gets the document so far after
    every row (the rows not yet tried listed as incomplete), so a run cut short keeps its rows."""
    start = time.monotonic()
    deadline = start + budget_s
    env = environment(device)
    choices: list[dict] = []
    incomplete: list[str] = []
    failed: list[dict] = []
    labels = [f"{kernel} {dtype_name} {precision}" for kernel, dtype_name, precision in rows]

    def document(pending: Sequence[str]) -> dict:
        tuned = {
            "date": env["date"], "git_commit": env["git_commit"], "source_hash": env["source_hash"],
            "torch": env["torch"], "triton": env["triton"], "cuda": env["cuda"], "driver": env.get("driver"),
            "device": device, "model": "torchvision", "blocks": list(blocks), "batch": batch,
            "image_size": hw or "GoogLeNet 224x224",
            "layout": "channels_last" if layout == torch.channels_last else "contiguous",
            "timer": timer_label(timer),
            "budget_s": budget_s, "elapsed_s": round(time.monotonic() - start, 1), "seed": seed,
            "incomplete": incomplete + list(pending), "failed": list(failed),
        }
        return {"schema": SCHEMA, "gpu": gpu, "tuned": tuned, "choices": list(choices)}

    cases: list[TuneCase] = []
    cases_dtype = None  # one dtype's tensors at a time; rows come grouped by dtype
    for i, (kernel, dtype_name, precision) in enumerate(rows):
        label = labels[i]
        if len(candidate_names(kernel, dtype_name, precision)) == 1:
            progress(f"{label}: one candidate, nothing to tune")
            continue
        if time.monotonic() > deadline:
            incomplete.append(label)
            continue
        if dtype_name != cases_dtype:
            cases = []  # free the previous dtype's tensors first
            cases = make_cases(blocks, getattr(torch, dtype_name), batch, device, layout, seed, hw)
            cases_dtype = dtype_name
        try:
            entry = tune_row(kernel, dtype_name, precision, cases, timer, deadline)
        except DefaultConfigFailed as err:
            failed.append({"row": label, "error": str(err)})
            progress(f"{label}: FAILED: {err}")
            on_row(document(labels[i + 1:]))
            continue
        except DeviceUnusable as err:  # nothing more can run: the rest stays at its default
            failed.append({"row": label, "error": str(err)})
            progress(f"{label}: STOPPED: {err}")
            doc = document(labels[i + 1:])
            on_row(doc)
            return doc
        if entry is None:
            incomplete.append(label)
            progress(f"{label}: out of time")
            continue
        choices.append(entry)
        progress(f"{label}: {entry['config']} ({entry['speedup_vs_default']:.2f}x the default "
                 f"{entry['default']}; {len(entry['rejected'])} rejected) [{time.monotonic() - start:.0f} s]")
        on_row(document(labels[i + 1:]))
    return document(())


def format_choices(doc: dict) -> str:
    """One line per tuned row: choice, its total median, the default's, and the speedup."""
    rows = []
    for c in doc["choices"]:
        ms = c["median_ms"]
        rows.append([c["kernel"], c["dtype"], c["input_precision"], c["config"], f"{ms[c['config']]:.3f}",
                     c["default"], f"{ms[c['default']]:.3f}", f"{c['speedup_vs_default']:.2f}x",
                     len(ms), len(c["rejected"])])
    header = ["kernel", "dtype", "dots", "choice", "ms", "default", "default ms", "speedup", "timed", "rejected"]
    return text_table(header, rows, left=4)


def parse_rows(dtypes: Sequence[str], kernel_names: Sequence[str]) -> list[tuple[str, str, str]]:
    """(kernel, dtype, precision) rows from command-line names ("bf16,tf32"; "reduce_conv")."""
    rows = []
    for name in dtypes:
        if name not in COMPUTE_SETTINGS:
            raise ValueError(f"unknown dtype {name!r}; expected some of {', '.join(COMPUTE_SETTINGS)}")
        dtype, precision = COMPUTE_SETTINGS[name]
        for kernel in kernel_names:
            if kernel not in KERNEL_ORDER:
                raise ValueError(f"unknown kernel {kernel!r}; expected some of {', '.join(KERNEL_ORDER)}")
            rows.append((kernel, dtype_name(dtype), precision))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="bf16,tf32,fp16,fp32",
                        help="comma-separated, in tuning order: fp32 (IEEE dots), tf32, fp16, bf16 (default: all)")
    parser.add_argument("--kernels", default=",".join(KERNEL_ORDER), help="comma-separated kernel names")
    parser.add_argument("--blocks", default=",".join(DEFAULT_BLOCKS), help="GoogLeNet blocks to time on")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--layout", choices=("channels_last", "contiguous"), default="channels_last",
                        help="memory format of input and output")
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="stop starting rows after this many seconds; unfinished rows keep their default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".",
                        help="write <gpu-slug>.json here (check it in under kernels/tuned/, or point "
                             "FUSED_INCEPTION_TUNED_DIR at this directory)")
    tactics = parser.add_argument_group(
        "tactics", "which implementation each fused block runs (triton, aten, modules): timed after the configs")
    tactics.add_argument("--tactic-budget-s", type=float, default=300.0,
                         help="stop starting tactic rows after this many seconds (0: tune no tactics)")
    tactics.add_argument("--tactic-blocks", default=",".join(BLOCK_NAMES),
                         help="GoogLeNet blocks (a record applies to every block of the same shape)")
    tactics.add_argument("--tactic-dtypes", default="bf16,fp16,fp32",
                         help="fp32 with PyTorch's conv TF32 setting, as the fused blocks run it")
    tactics.add_argument("--tactic-batches", default=",".join(map(str, DEFAULT_TACTIC_BATCHES)),
                         help="one batch per bucket (1 | 2-16 | 17-64 | 65+)")
    tactics.add_argument("--tactic-modes", default=",".join(MODES), help="some of " + ", ".join(MODES))
    tactics.add_argument("--tactics", default=",".join(TACTICS), help="the candidates (default: all)")


def run(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        print("tune needs a CUDA GPU: timings of the Triton interpreter say nothing about a GPU's best configs "
              "or tactics", flush=True)
        return 2
    gpu = torch.cuda.get_device_name()
    try:
        rows = parse_rows(csv_list(args.dtypes), csv_list(args.kernels))
        blocks = csv_list(args.blocks)
        for b in blocks:
            googlenet_spec(b, "torchvision")
        plan = tactic_plan(args)
    except ValueError as e:
        print(f"error: {e}", flush=True)
        return 2
    layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    print(f"tuning {len(rows)} config rows on {gpu} (blocks {','.join(blocks)}, batch {args.batch}, {args.layout}; "
          f"budget {args.budget_s:.0f} s), then {len(plan)} tactic rows (budget {args.tactic_budget_s:.0f} s)",
          flush=True)
    path = Path(args.out_dir) / f"{gpu_slug(gpu)}.json"

    def write(doc: dict) -> None:  # after every row that tuned or failed: a run cut short keeps them
        if doc["choices"] or doc["tuned"]["failed"] or doc.get("tactics") or _tactic_failures(doc):
            write_text(path, json.dumps(doc, indent=1) + "\n")

    say = lambda line: print(line, flush=True)  # noqa: E731
    doc = tune(rows, blocks, args.batch, device="cuda", gpu=gpu, timer=do_bench_timer, budget_s=args.budget_s,
               layout=layout, seed=args.seed, progress=say, on_row=write)
    write(doc)
    if plan:
        # the triton tactic is timed with the configs just tuned: its forward reads the file written here
        os.environ[ENV_DIR] = str(Path(args.out_dir).resolve())
        clear_cache()
        settings = {"blocks": csv_list(args.tactic_blocks), "dtypes": csv_list(args.tactic_dtypes),
                    "batches": [int(b) for b in csv_list(args.tactic_batches)], "modes": csv_list(args.tactic_modes),
                    "candidates": csv_list(args.tactics), "layout": args.layout,
                    "budget_s": args.tactic_budget_s, "timer": timer_label(stream_timer)}
        part = tune_tactics(plan, device="cuda", gpu=gpu, capability=torch.cuda.get_device_capability(),
                            timer=stream_timer, budget_s=args.tactic_budget_s, allowed=settings["candidates"],
                            layout=layout, seed=args.seed, progress=say,
                            on_row=lambda part: write(with_tactics(doc, part, settings)))
        doc = with_tactics(doc, part, settings)
        write(doc)
    return _summary(doc, path)


def tactic_plan(args: argparse.Namespace) -> list[TacticRow]:
    """The tactic rows the arguments ask for (none with --tactic-budget-s 0); ValueError on a bad name."""
    if args.tactic_budget_s <= 0:
        return []
    allowed = csv_list(args.tactics)
    for name in allowed:
        if name not in TACTICS:
            raise ValueError(f"unknown tactic {name!r}; expected some of {', '.join(TACTICS)}")
    blocks = csv_list(args.tactic_blocks)
    for b in blocks:
        googlenet_spec(b, "torchvision")
    dtypes = []
    for name in csv_list(args.tactic_dtypes):
        if name not in SHORT_NAMES:
            raise ValueError(f"unknown tactic dtype {name!r}; expected some of {', '.join(SHORT_NAMES)}")
        dtypes.append(SHORT_NAMES[name])
    try:
        batches = [int(b) for b in csv_list(args.tactic_batches)]
    except ValueError:
        raise ValueError(f"--tactic-batches must be integers, got {args.tactic_batches!r}") from None
    return tactic_rows(blocks, dtypes, batches, csv_list(args.tactic_modes))


def _tactic_failures(doc: dict) -> list[dict]:
    return doc["tuned"].get("tactics", {}).get("failed", [])


def _summary(doc: dict, path: Path) -> int:
    """Print what was tuned, left out and failed; the exit code (1: a row failed or nothing tuned)."""
    tactics = doc["tuned"].get("tactics", {})
    incomplete = doc["tuned"]["incomplete"] + tactics.get("incomplete", [])
    failed = doc["tuned"]["failed"] + _tactic_failures(doc)
    if incomplete:
        print(f"not tuned (budget): {', '.join(incomplete)}")
    for f in failed:
        print(f"FAILED {f['row']}: {f['error']}")
    if not doc["choices"] and not doc.get("tactics") and not failed:
        print("no row finished within the budget: nothing written")
        return 1
    if doc["choices"]:
        print(format_choices(doc))
    if doc.get("tactics"):
        print("tactics:")
        print(format_tactic_rows(tactics))
    print(f"wrote {path}")
    return 1 if failed else 0
