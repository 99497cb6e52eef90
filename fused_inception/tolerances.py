"""Numerical parity against a float64 reference, with per-dtype tolerances (their
reasoning: docs/DESIGN.md).

Used by the tests and by ``python -m fused_inception parity``. Errors are measured as the
relative norm ``||out - ref|| / ||ref||`` and the max absolute error; a result passes when the
relative error is within the dtype's tolerance and every element is finite (outputs are poisoned
with NaN before a kernel runs, so an unwritten element shows up as non-finite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .dtypes import dtype_name

# relative-error tolerances: fp32 IEEE, fp32 with TF32 dots, fp16, bf16
TOLERANCES: dict[str, float] = {"float32": 1e-5, "tf32": 1e-3, "float16": 5e-3, "bfloat16": 2e-2}


def tolerance_key(dtype: torch.dtype, tf32: bool = False) -> str:
    """The TOLERANCES key for a compute dtype (``tf32`` for fp32 with TF32 dots)."""
    name = dtype_name(dtype)
    if name not in TOLERANCES:
        raise ValueError(f"no tolerance for dtype {dtype}; expected float32, float16 or bfloat16")
    return "tf32" if tf32 and name == "float32" else name


@dataclass(frozen=True)
class ParityResult:
    """Error of one output against its float64 reference."""

    rel_error: float
    max_abs_error: float
    tolerance: float
    dtype: str
    all_finite: bool

    @property
    def passed(self) -> bool:
        return self.all_finite and self.rel_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        finite = "" if self.all_finite else ", non-finite values"
        return (f"{verdict}: rel {self.rel_error:.3e} (tol {self.tolerance:.0e}), "
                f"max abs {self.max_abs_error:.3e}, {self.dtype}{finite}")


def compare(out: torch.Tensor, ref: torch.Tensor, dtype_key: str) -> ParityResult:
    """Compare ``out`` with the float64 reference ``ref`` (same shape) at TOLERANCES[dtype_key]."""
    if out.shape != ref.shape:
        raise ValueError(f"shape mismatch: out {tuple(out.shape)} vs reference {tuple(ref.shape)}")
    if ref.dtype != torch.float64:
        raise TypeError(f"the reference must be float64, got {ref.dtype}")
    ref = ref.detach()
    o = out.detach().to(device=ref.device, dtype=torch.float64)
    finite = bool(torch.isfinite(o).all())
    diff = torch.nan_to_num(o - ref, nan=math.inf)
    ref_norm = float(torch.linalg.vector_norm(ref))
    diff_norm = float(torch.linalg.vector_norm(diff))
    rel = diff_norm / ref_norm if ref_norm > 0 else diff_norm
    max_abs = float(diff.abs().max()) if diff.numel() else 0.0
    return ParityResult(rel, max_abs, TOLERANCES[dtype_key], dtype_key, finite)


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype_key: str, what: str = "output") -> ParityResult:
    """compare(), raising AssertionError with the numbers when it fails."""
    result = compare(out, ref, dtype_key)
    if not result.passed:
        raise AssertionError(f"{what}: {result}")
    return result


def assert_same_nonfinite(out: torch.Tensor, ref: torch.Tensor, dtype_key: str, what: str = "output",
                          baseline: torch.Tensor | None = None) -> ParityResult:
    """For inputs holding NaN/Inf: ``out`` is NaN exactly where the float64 ``ref`` is NaN, +Inf
    and -Inf exactly where it is, and within TOLERANCES[dtype_key] of it (compare()) on the
    positions where ``ref`` is finite; with a ``baseline`` (the unfused computation in the same
    dtype) within the larger of that and BASELINE_FACTOR x the baseline's own error there
    (compare_with_baseline). AssertionError with counts and the first position on a mismatch."""
    if out.shape != ref.shape:
        raise ValueError(f"shape mismatch: out {tuple(out.shape)} vs reference {tuple(ref.shape)}")
    o = out.detach().to(device=ref.device, dtype=torch.float64)
    ref = ref.detach()
    for name, kind in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        mismatch = kind(o) != kind(ref)
        if bool(mismatch.any()):
            first = tuple(int(i) for i in mismatch.nonzero()[0])
            raise AssertionError(
                f"{what}: {name} at {int(kind(o).sum())} positions, the reference at {int(kind(ref).sum())}; "
                f"{int(mismatch.sum())} differ, first at {first} "
                f"(out {o[first].item()}, reference {ref[first].item()})")
    finite = torch.isfinite(ref)
    if baseline is None:
        return assert_close(o[finite], ref[finite], dtype_key, f"{what} (finite positions)")
    b = baseline.detach().to(device=ref.device, dtype=torch.float64)
    if not bool(torch.isfinite(b[finite]).all()):  # an infinite baseline error would pass anything
        raise AssertionError(f"{what}: the baseline is not finite where the reference is")
    return assert_close_to_baseline(o[finite], ref[finite], b[finite], dtype_key, f"{what} (finite positions)")


# Whole networks: their own rounding error in a dtype grows with depth (measured: the unfused
# torchvision GoogLeNet in fp32 is 1e-5..1e-2 off float64 in some parameter gradients of a training
# step, depending on the draw, through BN over few samples). A fused network there is held to the
# larger of the dtype's tolerance and this many times the unfused network's own error in the same
# dtype against the same reference: swapping in the fused blocks may not make it materially worse.
BASELINE_FACTOR = 2.0


def compare_with_baseline(out: torch.Tensor, ref: torch.Tensor, baseline: torch.Tensor, dtype_key: str) -> ParityResult:
    """compare(out, ref) at tolerance max(TOLERANCES[dtype_key], BASELINE_FACTOR x the error of
    ``baseline`` (the unfused computation in the same dtype) against ``ref``)."""
    own = compare(baseline, ref, dtype_key)
    result = compare(out, ref, dtype_key)
    tolerance = max(result.tolerance, BASELINE_FACTOR * own.rel_error)
    return ParityResult(result.rel_error, result.max_abs_error, tolerance, dtype_key, result.all_finite)


def assert_close_to_baseline(out: torch.Tensor, ref: torch.Tensor, baseline: torch.Tensor, dtype_key: str,
                             what: str = "output") -> ParityResult:
    """compare_with_baseline(), raising AssertionError with the numbers when it fails."""
    result = compare_with_baseline(out, ref, baseline, dtype_key)
    if not result.passed:
        raise AssertionError(f"{what}: {result} (baseline rel {compare(baseline, ref, dtype_key).rel_error:.3e})")
    return result


def poisoned(shape, dtype: torch.dtype, device, memory_format=torch.contiguous_format) -> torch.Tensor:
    """A new tensor filled with NaN: any element a kernel fails to write stays NaN."""
    return torch.full(shape, math.nan, dtype=dtype, device=device).contiguous(memory_format=memory_format)
