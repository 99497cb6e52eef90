"""How ``python -m fused_inception bench`` times the methods of one case: on a GPU one method at a
time (``measure``: CUDA events around each call); on the CPU all of them in rounds
(``measure_interleaved``: ``time.perf_counter`` around each call, every round calls each method
once, the first method of a round moving one along each round), so that a drift of the machine's
speed (another process, clock changes) hits every method alike instead of whichever ran last. Each
call after warm-up, on the next preallocated input; the median and percentiles, peak memory of one
call (GPU), and the inference output's sanity check against eager's (``check_bound``)."""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from fused_inception.tools.bench.cases import CaseSetup, prepare_call

MAX_REPEAT = 1000  # timed calls per method at most


def _stats(times_ms: Sequence[float]) -> dict:
    t = sorted(times_ms)

    def q(p: float) -> float:
        # linear interpolation between closest ranks
        if len(t) == 1:
            return t[0]
        pos = p * (len(t) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(t) - 1)
        return t[lo] + (t[hi] - t[lo]) * (pos - lo)

    return {"median_ms": q(0.5), "p20_ms": q(0.2), "p80_ms": q(0.8), "min_ms": t[0], "max_ms": t[-1],
            "mean_ms": sum(t) / len(t), "n": len(t)}


def time_cpu(fn: Callable[[int], object], warmup: int, repeat: int, rep_ms: float) -> list[float]:
    """Milliseconds of ``fn(i)`` calls after ``warmup`` calls: at least ``repeat`` calls and until
    ``rep_ms`` ms were measured (at most MAX_REPEAT calls)."""
    for i in range(warmup):
        fn(i)
    times: list[float] = []
    i = warmup
    while len(times) < repeat or (sum(times) < rep_ms and len(times) < MAX_REPEAT):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
        i += 1
    return times


def time_cuda(fn: Callable[[int], object], warmup: int, repeat: int, rep_ms: float) -> list[float]:
    """Milliseconds of ``fn(i)`` calls by CUDA events around each call, after ``warmup`` calls; the
    count is sized from the warm-up to measure about ``rep_ms`` ms (at least ``repeat`` calls)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for i in range(warmup):
        fn(i)
    end.record()
    torch.cuda.synchronize()
    est = max(start.elapsed_time(end) / max(warmup, 1), 1e-3)
    n = int(min(MAX_REPEAT, max(repeat, math.ceil(rep_ms / est))))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for k in range(n):
        starts[k].record()
        fn(warmup + k)
        ends[k].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def _first_output(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def _rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    # in float64 where the outputs are: a block's output at batch 256 is ~100 M elements, a second
    # to copy to the CPU for every method
    o, r = out.detach().double(), ref.detach().double()
    norm = float(torch.linalg.vector_norm(r))
    diff = float(torch.linalg.vector_norm(torch.nan_to_num(o - r, nan=math.inf)))
    return diff / norm if norm > 0 else diff


def error_result(err: Exception) -> dict:
    """The result of a method that could not be built or run: a result, not the end of the run."""
    return {"error": f"{type(err).__name__}: {err}"[:2000]}


def _start(setup: CaseSetup, name: str, settings: dict, reference_out: torch.Tensor | None,
           reset_dynamo: bool = True):
    """``(fn, result)``: method ``name`` built and warmed up (``prepare_call``), its inference
    output checked against ``reference_out`` (or kept in ``result["output"]`` to be the reference)."""
    fn, result = prepare_call(setup, name, settings["compile_mode"], reset_dynamo)
    if setup.case.mode == "infer":
        out = _first_output(fn(0))
        if setup.device == "cuda":
            torch.cuda.synchronize()
        if reference_out is None:
            result["output"] = out.detach().clone()
        else:
            result["rel_err_vs_eager"] = _rel_error(out, reference_out)
    return fn, result


def _finish(setup: CaseSetup, result: dict, times: Sequence[float]) -> dict:
    """``result`` with the timings and their statistics."""
    result["times_ms"] = [round(t, 5) for t in times]
    result.update({k: round(v, 5) if isinstance(v, float) else v for k, v in _stats(times).items()})
    result["img_per_s"] = round(setup.case.batch / (result["median_ms"] / 1e3), 2)
    return result


def measure(setup: CaseSetup, name: str, settings: dict, reference_out: torch.Tensor | None) -> dict:
    """Time one method on one case; returns its result dict (times, stats, memory, check)."""
    cuda = setup.device == "cuda"
    fn, result = _start(setup, name, settings, reference_out)
    timer = time_cuda if cuda else time_cpu
    times = timer(fn, max(1, settings["warmup"]) if cuda else settings["warmup"], settings["repeat"],
                  settings["rep_ms"])
    if "peak_mem_mb" not in result:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn(0)
            torch.cuda.synchronize()
            result["peak_mem_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 2)
        else:
            result["peak_mem_mb"] = None  # the CPU allocator keeps no statistics: n/a
    return _finish(setup, result, times)


def measure_interleaved(setup: CaseSetup, names: Sequence[str], settings: dict) -> dict[str, dict]:
    """CPU: every method of ``names`` on one case, timed in rounds (module docstring); at least
    ``repeat`` rounds, and more until each method has ``rep_ms`` ms measured (at most MAX_REPEAT).
    Returns a result dict per method, as ``measure`` gives; the inference outputs are checked
    against eager's (``"eager"`` first in ``names`` when it is there; without it, nothing is
    checked). A method that fails to build or run gets ``{"error": ...}`` and leaves the rounds."""
    results: dict[str, dict] = {}
    fns: dict[str, Callable[[int], object]] = {}
    reference_out = None
    torch._dynamo.reset()  # once per case: every method is built before any is timed
    for name in names:
        try:
            fns[name], results[name] = _start(setup, name, settings, reference_out, reset_dynamo=False)
        except Exception as err:
            results[name] = error_result(err)
            continue
        results[name]["peak_mem_mb"] = None  # the CPU allocator keeps no statistics: n/a
        output = results[name].pop("output", None)
        if name == "eager":
            reference_out = output
    times: dict[str, list[float]] = {name: [] for name in fns}
    call = 0
    for _ in range(settings["warmup"]):
        for fn in fns.values():
            fn(call)
        call += 1
    rounds = 0
    while fns and (rounds < settings["repeat"] or (
            min(sum(t) for t in times.values()) < settings["rep_ms"] and rounds < MAX_REPEAT)):
        order = list(fns)
        for name in order[rounds % len(order):] + order[:rounds % len(order)]:
            try:
                t0 = time.perf_counter()
                fns[name](call)
                times[name].append((time.perf_counter() - t0) * 1e3)
            except Exception as err:
                results[name] = error_result(err)
                del fns[name], times[name]
        call += 1
        rounds += 1
    for name, t in times.items():
        _finish(setup, results[name], t)
    return results


# Sanity bounds on a method's inference output against eager's (relative norm): they catch a wrong
# or garbage output (order 1), not precision (that is the parity command's job). One block; the
# whole network's rounding error grows with depth (measured on the CPU: fp16 logits 3e-2 off
# float64, so two fp16 implementations differ by about 4e-2; bf16 has 8x fp16's unit roundoff).
CHECK_BOUNDS = {"fp32": (1e-4, 1e-3), "tf32": (1e-2, 0.2), "fp16": (1e-2, 0.2), "bf16": (5e-2, 0.7)}


def check_bound(dtype: str, scope: str, tf32: bool) -> float:
    """The sanity bound of ``warn_check`` for a case (``tf32``: fp32 on a GPU with TF32 allowed)."""
    key = "tf32" if dtype == "fp32" and tf32 else dtype
    block, net = CHECK_BOUNDS[key]
    return net if scope == "net" else block


def warn_check(entry: dict, name: str, say: Callable[[str], None], tf32: bool) -> None:
    """Mark method ``name``'s inference result in a case ``ok`` or ``MISMATCH`` against the case's
    sanity bound (and ``say`` a warning for a mismatch); a result without a check stays unmarked."""
    tol = check_bound(entry["dtype"], entry["scope"], tf32)
    entry["check_bound"] = tol
    res = entry["results"][name]
    err = res.get("rel_err_vs_eager")
    if err is not None and not err <= tol:
        res["check"] = "MISMATCH"
        say(f"warning: {entry['scope']}/{entry['dtype']}/b{entry['batch']} {name}: output differs from "
            f"eager by {err:.2e} (relative; sanity bound {tol:.0e})")
    elif err is not None:
        res["check"] = "ok"

