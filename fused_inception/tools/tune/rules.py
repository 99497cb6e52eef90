"""What the two tuners of ``python -m fused_inception tune`` share (kernel configs: ``command.py``;
tactics: ``tactic_rows.py``): the timer they time candidates with, the margin a candidate must
beat the default by, and how an error that leaves the GPU unusable is told from one that does not.
"""

from __future__ import annotations

from typing import Callable

import torch

# triton.testing.do_bench arguments (ms)
WARMUP_MS, REP_MS = 10, 40
# a candidate replaces the default only when at least this much faster in total: medians of a few
# dozen runs move by a percent or two, and a tie should not swap configs or tactics
MIN_GAIN = 0.03

# a timer: median ms of a call (the GPU's are do_bench_timer and stream_timer; tests script one)
Timer = Callable[[Callable[[], object]], float]
# stream_timer: calls before timing, calls between two events, and rounds of those
STREAM_WARMUP, STREAM_CALLS, STREAM_ROUNDS = 3, 10, 7


def do_bench_timer(call: Callable[[], object]) -> float:
    """Median ms of a call on the GPU (triton.testing.do_bench: CUDA events, L2 flushed each time)."""
    import triton.testing

    return float(triton.testing.do_bench(call, warmup=WARMUP_MS, rep=REP_MS, return_mode="median"))


def stream_timer(call: Callable[[], object]) -> float:
    """Median ms per call of back-to-back calls on the GPU, as a block runs inside a network: CUDA
    events around STREAM_CALLS calls, STREAM_ROUNDS rounds recorded without a synchronization
    between them, after STREAM_WARMUP calls.

    The tactic rows use this, not do_bench: do_bench flushes the L2 and starts every call on an idle
    GPU, so a call is charged its host time (Python, launches) whenever that exceeds its GPU time.
    On an H200 do_bench timed the triton tactic of a FusedInception 4b (bf16, batch 256) at 0.78 ms
    and ranked aten first; bench's back-to-back calls measured 0.46 ms, and so did this timer
    (0.458 ms, triton first): benchmarks/results/nvidia-h200-20261130-2337.* and
    nvidia-h200-tactics-20261130-2350.*. Here a call's host time overlaps the GPU work queued
    before it; it shows only where the host is the slower of the two, as it would in the network.
    Unlike bench, it does not rotate inputs: a block whose input and output fit the L2 (5a and 5b at
    batch 256: about 47 MB of a 60 MB L2) is timed warm."""
    for _ in range(STREAM_WARMUP):
        call()
    torch.cuda.synchronize()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(STREAM_ROUNDS + 1)]
    events[0].record()
    for i in range(STREAM_ROUNDS):
        for _ in range(STREAM_CALLS):
            call()
        events[i + 1].record()
    events[-1].synchronize()
    per_call = sorted(a.elapsed_time(b) / STREAM_CALLS for a, b in zip(events, events[1:]))
    return float(per_call[len(per_call) // 2])


def timer_label(timer: Timer) -> str:
    """How a tuned file says its timings were taken."""
    if timer is do_bench_timer:
        return f"triton.testing.do_bench median, warmup {WARMUP_MS} ms, rep {REP_MS} ms"
    if timer is stream_timer:
        return (f"back-to-back calls: median of {STREAM_ROUNDS} rounds of {STREAM_CALLS} calls between CUDA "
                f"events, after {STREAM_WARMUP} warm-up calls")
    return getattr(timer, "__name__", "custom")


class DeviceUnusable(RuntimeError):
    """A candidate's error left the device unusable (a sticky CUDA error such as an illegal
    address): every later launch would fail too and be recorded for the wrong reason, so tuning
    stops."""


def device_error(device: torch.device) -> str | None:
    """None if ``device`` still runs work after an error, else what it raises (CUDA errors such as
    an illegal address are sticky: the context is unusable until the process ends)."""
    if device.type != "cuda":
        return None


def candidate_failure(err: Exception, device: torch.device, what: str) -> str:
    """Why a candidate failed (a compile or launch error: it is out, the row goes on); raises
    DeviceUnusable instead when the error left ``device`` unusable (``what`` names the candidate)."""
    why = f"{type(err).__name__}: {err}"[:500]
    sticky = device_error(device)
    if sticky is not None:
        raise DeviceUnusable(f"{what}: {why}; the device is unusable after it: {sticky}") from err
    return why
    try:
        torch.cuda.synchronize(device)
    except Exception as err:  # the sticky error resurfaces on any later call
        return f"{type(err).__name__}: {err}"[:500]
    return None
