"""What the library's tests share: the device, small block shapes and signed random inputs.

The reference blocks themselves (random parameters, nonzero BN statistics, gamma of either sign)
come from the library: ``fused_inception.models.randomize.random_block``, folded by
``fused_inception.folding.params_of_reference_block``."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from fused_inception.folding import params_from_units, units_of_reference_block
from fused_inception.models.randomize import random_block
from fused_inception.params import InceptionParams
from fused_inception.spec import InceptionSpec
from fused_inception.tolerances import assert_close, assert_close_to_baseline

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"

# a block small enough for the Triton interpreter, with BN (torchvision-like) and without (paper-like)
SMALL = InceptionSpec(8, 4, 6, 5, 3, 7, 2, k3=3, k5=5, batch_norm=True, conv_bias=False)
SMALL_NO_BN = InceptionSpec(8, 4, 6, 5, 3, 7, 2, k3=3, k5=5, batch_norm=False, conv_bias=True)
# for gradient checks: every conv at least 6 wide, so a parameter gradient is a vector of at least
# 6 sums and the relative-norm check is not at the mercy of one sum that cancels to near zero (a
# 2-wide bias gradient whose one live channel summed to 0.04 from terms of size 1 failed at 2e-5
# from float32 summation rounding alone, 7.8e-7 absolute)
WIDE = InceptionSpec(8, 6, 6, 7, 6, 7, 6, k3=3, k5=5, batch_norm=True, conv_bias=False)


def tf32_round(t: torch.Tensor) -> torch.Tensor:
    """The nearest TF32 value of each float32 element, ties away from zero (cvt.rna's rule), in
    float64; NaN and +-Inf kept. Written from the definition (11 significant bits of frexp's
    mantissa), independent of the kernels' bit arithmetic (kernels/tf32.py); for normal numbers
    and zero (a float32 subnormal keeps fewer bits there)."""
    m, e = torch.frexp(t.double())
    rounded = torch.ldexp(torch.sign(m) * torch.floor(m.abs() * 2048 + 0.5) / 2048, e)
    return torch.where(torch.isfinite(t), rounded.float().double(), t.double())


def random_input(shape, gen: torch.Generator) -> torch.Tensor:
    """Signed float64 input (standard normal)."""
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def assert_entry_point_matches_reference(run: Callable[[torch.Tensor, InceptionParams], torch.Tensor],
                                         gen: torch.Generator) -> None:
    """fp32 through the kernels by ``run(x, params)`` (an entry point of the fused block): output,
    input grad and every conv/BN parameter grad (BN folded) against the float64 block."""
    block = random_block(SMALL, gen).float()
    x = random_input((2, 8, 5, 6), gen).float().requires_grad_()
    ref_block = copy.deepcopy(block).double()
    x_ref = x.detach().double().requires_grad_()
    ref = ref_block(x_ref)
    grad_out = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    ref.backward(grad_out)

    params = params_from_units(units_of_reference_block(block), True, torch.float32)
    out = run(x, params)
    out.backward(grad_out.float())
    assert_close(out, ref, "float32", "output")
    assert_close(x.grad, x_ref.grad, "float32", "grad x")
    ref_params = dict(ref_block.named_parameters())
    for name, p in block.named_parameters():
        assert_close(p.grad, ref_params[name].grad, "float32", f"grad {name}")


def assert_buffers_match(fused: torch.nn.Module, ref: torch.nn.Module, context: str) -> None:
    """Every buffer of ``fused`` equals ``ref``'s of the same name: float buffers (running
    statistics) within float32's tolerance, integer ones (num_batches_tracked) exactly."""
    ref_buffers = dict(ref.named_buffers())
    for name, b in fused.named_buffers():
        if b.is_floating_point():
            assert_close(b, ref_buffers[name], "float32", f"buffer {name}, {context}")
        else:
            assert torch.equal(b, ref_buffers[name]), (context, name, b, ref_buffers[name])


def assert_step_matches(fused: torch.nn.Module, ref: torch.nn.Module, inputs: dict, outs: dict,
                        context: str) -> None:
    """One training step of ``fused`` against the float64 ``ref``: outputs within float32's
    tolerance, the input gradient within the baseline rule (``inputs``/``outs`` keyed "fused",
    "plain" -- the unfused block in float32 -- and "ref"), and every buffer."""
    assert_close(outs["fused"], outs["ref"], "float32", f"output, {context}")
    assert_close_to_baseline(inputs["fused"].grad, inputs["ref"].grad, inputs["plain"].grad, "float32",
                             f"grad x, {context}")
    assert_buffers_match(fused, ref, context)
