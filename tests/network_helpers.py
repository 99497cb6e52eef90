"""How the tests check a whole network's training step: its gradients in float64, its continuous
outputs in float32.

A training step's gradients are discontinuous wherever a ReLU pre-activation or a max-pool
near-tie sits within rounding of zero, and a whole network on random draws has such units. Two
cases measured:
* about 2 draws in 10 of a training step (BN training), a second fp32 run of the *unfused*
  network that only rounds differently (oneDNN convolutions off) already fails "BASELINE_FACTOR x
  the unfused error" (one case: a ReLU whose float64 pre-activation is -2.25e-6 at a scale of 6.5
  flips and routes a gradient elsewhere);
* frozen-BN fine-tuning on 64 x 64 inputs, fused fp32 against float64: 2 draws in 43 failed, each
  by about 1,000x the tolerance (one case: a pre-activation of inception4e's 5x5 reduction at
  6.5e-7 of its tensor's RMS, on the other side of zero in the fused network only; every parameter
  gradient before 4e was then 0.7-1.4% off float64, while the unfused fp32 network, rounding
  differently, stayed on the reference's side). On every draw some pre-activations sit within ten
  times the fp32 network's own rounding error of zero (27 on one draw), so no draw can be chosen
  away from them either.
No rounding-based tolerance covers a flip, so a step is checked in two parts, on any draw:
* float64: the fused network against the plain one, both float64, where no unit sits within
  rounding: the whole plumbing (the fused ops, their backward, dispatch per BN mode, running
  statistics) must agree to float64 rounding, FLOAT64_REL, parameter gradients of the fused blocks
  included (the op's PyTorch path computes float64 throughout for float64: the fold it makes in
  each call, its bias gradients). The Triton kernels do not take float64: this part runs the op's
  PyTorch path.
* float32: what is continuous in the inputs and does not jump when a ReLU flips (the loss, the
  logits, the running statistics), against the unfused network's own fp32 error
  (tolerances.assert_close_to_baseline); the gradients there must exist and be finite.
The fp32 gradients are checked at block level (tests/test_modes.py's block tests,
tests/block_helpers.py's entry-point checks), on blocks of a few hundred units, where a flip is
that much rarer.
"""

from __future__ import annotations

import torch
from torch import nn

from fused_inception.tolerances import compare

# measured at most 1.3e-14 (logits, gradients, buffers; 30 frozen-BN draws, 6 training-step draws
# of each variant); the margin is for float64 rounding amplified through depth and BN over few
# samples, and it stays far below the 6e-8 of a stray float32 rounding
FLOAT64_REL = 1e-10


def assert_within(out: torch.Tensor, ref: torch.Tensor, tolerance: float, what: str) -> None:
    """Relative error of ``out`` against the float64 ``ref`` within ``tolerance``, every element finite."""
    result = compare(out, ref, "float32")  # the key only names a tolerance, unused here
    assert result.all_finite and result.rel_error <= tolerance, \
        f"{what}: rel {result.rel_error:.3e} (tol {tolerance:.1e}), all finite: {result.all_finite}"


def assert_float64_gradients(fused64: nn.Module, ref: nn.Module) -> None:
    """Every parameter gradient of the float64 fused network within FLOAT64_REL of the float64 plain
    network's (``ref``, the same parameters by name)."""
    ref_params = dict(ref.named_parameters())
    for name, p in fused64.named_parameters():
        assert p.grad is not None, name
        assert_within(p.grad, ref_params[name].grad, FLOAT64_REL, f"float64 grad {name}")


def assert_gradients_present(net: nn.Module) -> None:
    """Every parameter of ``net`` has a gradient, all finite."""
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
