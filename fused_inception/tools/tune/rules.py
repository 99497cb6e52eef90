"""What the two tuners of ``python -m fused_inception tune`` share (kernel configs: ``command.py``;
tactics: ``tactic_rows.py``): the timer they time candidates with, the margin a candidate must
beat the default by, and how an error that leaves the GPU unusable is told from one that does not.
"""

from __future__ import annotations

from typing import Callable

import torch

# triton.testing.do_bench arguments (ms)
WARMUP_MS, REP_MS = 10, 40
# a candidate replaces the default only when at least this much faster in total: do_bench medians
# of a few dozen runs move by a percent or two, and a tie should not swap configs or tactics
MIN_GAIN = 0.03

# a timer: median ms of a call (the GPU's is do_bench_timer; tests script one)
Timer = Callable[[Callable[[], object]], float]


def do_bench_timer(call: Callable[[], object]) -> float:
    """Median ms of a call on the GPU (triton.testing.do_bench: CUDA events, L2 flushed each time)."""
    import triton.testing

    return float(triton.testing.do_bench(call, warmup=WARMUP_MS, rep=REP_MS, return_mode="median"))


def timer_label(timer: Timer) -> str:
    """How a tuned file says its timings were taken."""
    if timer is do_bench_timer:
        return f"triton.testing.do_bench median, warmup {WARMUP_MS} ms, rep {REP_MS} ms"
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
