"""The aten tactic (fused_inception.aten_forward) against the float64 reference block.

Reference blocks have random weights, nonzero BN statistics and gamma of either sign
(models.randomize.random_block); inputs are signed. Outputs, input gradients and the gradients of
every conv and BN parameter (BN folded on the autograd path, as a module folds it) are held to
parity.TOLERANCES of the dtype; float64 to torch.testing's float64 defaults and gradcheck. NaN/Inf
inputs give exactly the reference's NaN/+Inf/-Inf positions, in the output and the gradients.
The aten tactic runs on PyTorch's own kernels on every device, so these tests do not depend on
the Triton interpreter.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from block_helpers import DEVICE, random_input
from fused_inception.aten_forward import aten_forward, aten_inception_forward, aten_weights, aten_weights_from_units
from fused_inception.folding import params_from_units, params_of_reference_block, units_of_reference_block
from fused_inception.models.randomize import random_block
from fused_inception.params import WEIGHT_FIELDS, InceptionParams
from fused_inception.tolerances import BASELINE_FACTOR, TOLERANCES, assert_close, assert_same_nonfinite, compare, tolerance_key
from fused_inception.spec import InceptionSpec, googlenet_spec

SHAPE = (2, 6, 9, 11)


def _spec(relu: bool = True, batch_norm: bool = True, k5: int = 5) -> InceptionSpec:
    return InceptionSpec(6, 3, 4, 5, 2, 3, 4, k3=3, k5=k5, batch_norm=batch_norm, conv_bias=not batch_norm,
                         relu=relu)


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x`` as NCHW, channels_last, or a strided view (every other column of a wider tensor,
    channels a slice of more channels): neither contiguous nor channels_last."""
    if layout == "nchw":
        return x.contiguous()
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    wide = torch.zeros((n, c + 3, h, 2 * w), dtype=x.dtype, device=x.device)
    wide[:, 1:1 + c, :, ::2] = x
    view = wide[:, 1:1 + c, :, ::2]
    assert not view.is_contiguous() and not view.is_contiguous(memory_format=torch.channels_last)
    return view


LAYOUTS = ["nchw", "channels_last", "strided"]
FORWARD_DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FORWARD_DTYPES, ids=str)
@pytest.mark.parametrize("spec", [_spec(), _spec(relu=False), _spec(batch_norm=False, k5=3)],
                         ids=["bn-relu", "bn-no-relu", "bias-k5=3"])
def test_forward_parity(spec, dtype, layout, gen):
    block = random_block(spec, gen)
    x64 = random_input(SHAPE, gen)
    ref = block(x64)
    x = _layout(x64.to(device=DEVICE, dtype=dtype), layout)
    out = aten_inception_forward(x, aten_weights(params_of_reference_block(block, dtype).to(device=DEVICE)))
    assert out.dtype == dtype and out.shape == ref.shape
    want = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    assert out.is_contiguous(memory_format=want)
    assert_close(out, ref, tolerance_key(dtype), f"{spec} {dtype} {layout}")


def test_forward_float64(gen):
    block = random_block(_spec(), gen)
    x = random_input(SHAPE, gen).to(DEVICE)
    out = aten_forward(x, params_of_reference_block(block, torch.float64).to(device=DEVICE))
    torch.testing.assert_close(out.cpu(), block(x.cpu()))


@pytest.mark.parametrize("name", ["3a", "4d", "5b"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_googlenet_blocks(name, layout, gen):
    """Full-width torchvision blocks (BN, 3x3 "5x5"), fp32, at a small odd image size."""
    block = random_block(googlenet_spec(name, "torchvision"), gen)
    x64 = random_input((2, block.spec.in_channels, 5, 7), gen)
    x = _layout(x64.float().to(DEVICE), layout)
    out = aten_forward(x, params_of_reference_block(block, torch.float32).to(device=DEVICE))
    assert_close(out, block(x64), "float32", f"{name} {layout}")


def test_cat_order(gen):
    """A permuted concatenation order puts each branch in its own slice."""
    block = random_block(_spec(), gen)
    x64 = random_input(SHAPE, gen)
    ref = block(x64)
    order = ("conv5", "pool_proj", "branch1", "conv3")
    params = params_of_reference_block(block, torch.float32)
    params = InceptionParams(**{f: getattr(params, f) for f in WEIGHT_FIELDS}, ch1x1=params.ch1x1, relu=True,
                             cat_order=order)
    out = aten_forward(x64.float(), params)
    spec = block.spec
    bounds = {"branch1": (0, spec.ch1x1), "conv3": (spec.ch1x1, spec.ch1x1 + spec.ch3x3),
              "conv5": (spec.ch1x1 + spec.ch3x3, spec.ch1x1 + spec.ch3x3 + spec.ch5x5),
              "pool_proj": (spec.out_channels - spec.pool_proj, spec.out_channels)}
    ref_permuted = torch.cat([ref[:, slice(*bounds[name])] for name in order], 1)
    assert_close(out, ref_permuted, "float32", "permuted cat order")


def test_negative_input_padding(gen):
    """All-negative input: the pool's padding must be -inf (a zero pad would win every border max)."""
    block = random_block(_spec(), gen)
    x64 = -random_input(SHAPE, gen).abs() - 1.0
    out = aten_forward(x64.float(), params_of_reference_block(block, torch.float32))
    assert_close(out, block(x64), "float32", "negative input")


def _fused_with_grads(block: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor, dtype: torch.dtype,
                      fold: str = "units"):
    """Output and gradients (x and every parameter of ``block``) of the aten tactic with BN folded
    on the autograd path, as a module in frozen-BN training folds it: straight into the conv
    layout (``fold="units"``) or through InceptionParams (``"params"``)."""
    x = x.detach().clone().requires_grad_()
    units = units_of_reference_block(block)
    if fold == "units":
        out = aten_inception_forward(x, aten_weights_from_units(units, block.spec.relu, dtype))
    else:
        out = aten_forward(x, params_from_units(units, block.spec.relu, dtype, fold_dtype=torch.float32))
    out.backward(grad_out.to(device=out.device, dtype=out.dtype))
    return out, {"x": x.grad, **{name: p.grad for name, p in block.named_parameters()}}


def _reference_with_grads(block: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    out = block(x)
    out.backward(grad_out)
    return out, {"x": x.grad, **{name: p.grad for name, p in block.named_parameters()}}


def _fold_cancellation(block: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> dict[str, float]:
    """Per BN weight (gamma) of a float64 block: how much folding BN into the conv amplifies the
    rounding of that gradient.

    The unfused BN computes d gamma_c = sum_pixels g_c * (u_c - mean_c) / std_c from its input u
    (the conv's output) and output gradient g. The fold has no u: autograd through w' = w * s,
    b' = (b - mean) * s + beta gives d gamma_c = (A_c - B_c) / std_c with A_c = sum g_c * u_c
    (through the folded conv's weight gradient) and B_c = mean_c * sum g_c (through its bias),
    each a float32 sum rounded at the scale of |A_c| + |B_c|. Returns
    ||(|A| + |B|)|| / ||A - B||, the factor by which that cancellation can exceed the unfused
    block's own relative error (1 when there is none).
    """
    taps: dict[str, dict[str, torch.Tensor]] = {}
    handles = []
    for name, module in block.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            tap = taps.setdefault(f"{name}.weight", {"bn": module})

            def record(m, inputs, out, tap=tap):
                tap["u"] = inputs[0].detach()
                out.register_hook(lambda grad: tap.__setitem__("g", grad))
                return out.clone()  # the block's in-place ReLU then writes the copy

            handles.append(module.register_forward_hook(record))
    try:
        _reference_with_grads(block, x, grad_out)
    finally:
        for handle in handles:
            handle.remove()
    factors = {}
    for name, tap in taps.items():
        g, u, mean = tap["g"], tap["u"], tap["bn"].running_mean.view(1, -1, 1, 1)
        a = (g * u).sum((0, 2, 3))
        b = (mean * g).sum((0, 2, 3))
        diff = torch.linalg.vector_norm(a - b)
        factors[name] = float(torch.linalg.vector_norm(a.abs() + b.abs()) / diff) if diff > 0 else 1.0
    return factors


# Gradients in float32 (float64: gradcheck below). Not fp16 against float64 at its forward
# tolerance: an fp16 input rounds some 3x3 pool windows into ties and some pre-activations across
# zero, and each such event moves a gradient by up to 3e-2 relative, in the unfused fp16 modules as
# often as here (measured over seeds: either one at 5e-4..3e-2 on the same draws).
@pytest.mark.parametrize("fold", ["units", "params"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32], ids=str)
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
def test_gradients(relu, dtype, layout, fold, gen):
    """Input and every conv/BN parameter gradient through the folded BN against float64. The
    block computes in ``dtype`` from float32 parameters (a mixed-precision module's layout); its
    float64 reference holds the same float32-rounded parameters."""
    block = random_block(_spec(relu), gen).float().to(DEVICE)
    ref_block = copy.deepcopy(block).double().cpu()
    x64 = random_input(SHAPE, gen)
    grad_out = torch.randn((SHAPE[0], block.spec.out_channels, *SHAPE[2:]), generator=gen, dtype=torch.float64)
    ref, ref_grads = _reference_with_grads(ref_block, x64, grad_out)
    out, grads = _fused_with_grads(block, _layout(x64.to(device=DEVICE, dtype=dtype), layout), grad_out, dtype, fold)
    key = tolerance_key(dtype)
    assert_close(out, ref, key, "output")
    # gradients that sum over every pixel (BN gamma and beta, conv weights) carry the rounding of
    # those sums: held, as the library's other gradient tests are, to the larger of the dtype's
    # tolerance and BASELINE_FACTOR x the unfused block's own error in the same dtype; a BN weight's
    # baseline error is scaled by the fold's cancellation for it (_fold_cancellation: a property of
    # folding BN on the autograd path, documented in docs/DESIGN.md, seen at up to 3.3x the unfused
    # error where the true gradient is 1/50 of its neighbours')
    _, plain_grads = _reference_with_grads(copy.deepcopy(block), _layout(x64.to(device=DEVICE, dtype=dtype), layout),
                                           grad_out.to(device=DEVICE, dtype=dtype))
    cancellation = _fold_cancellation(copy.deepcopy(ref_block), x64, grad_out)
    assert grads.keys() == ref_grads.keys()
    for name, ref_grad in ref_grads.items():
        assert grads[name] is not None, name
        own = compare(plain_grads[name], ref_grad, key).rel_error * cancellation.get(name, 1.0)
        result = dataclasses.replace(compare(grads[name], ref_grad, key),
                                     tolerance=max(TOLERANCES[key], BASELINE_FACTOR * own))
        assert result.passed, (f"grad {name} ({dtype}, {layout}): {result}; baseline {own:.3e} "
                               f"(fold cancellation x{cancellation.get(name, 1.0):.1f})")


def test_gradcheck_float64(gen):
    """Autograd's gradients w.r.t. x and every InceptionParams tensor against numerical differences."""
    block = random_block(_spec(), gen)
    params = params_of_reference_block(block, torch.float64)
    tensors = [getattr(params, f).detach().clone().requires_grad_() for f in WEIGHT_FIELDS]
    x = random_input((1, 6, 4, 5), gen).requires_grad_()

    def f(x, *ts):
        return aten_forward(x, InceptionParams(**dict(zip(WEIGHT_FIELDS, ts)), ch1x1=params.ch1x1, relu=True))

    assert torch.autograd.gradcheck(f, (x, *tensors), eps=1e-6, atol=1e-5, rtol=1e-4)


NAN, INF = math.nan, math.inf
# (n, c, h, w, value): interior, corner, edge, and all of them together
BAD_VALUES = {
    "nan-interior": [(0, 2, 4, 5, NAN)],
    "posinf-corner": [(1, 0, 0, 0, INF)],
    "neginf-edge": [(1, 5, 8, 6, -INF)],
    "all-together": [(0, 4, 0, 7, NAN), (0, 1, 5, 10, INF), (1, 3, 3, 0, -INF), (1, 2, 8, 10, NAN)],
}


def _bad_input(case: str, gen: torch.Generator) -> torch.Tensor:
    x = random_input(SHAPE, gen)
    for n, c, h, w, value in BAD_VALUES[case]:
        x[n, c, h, w] = value
    return x


@pytest.mark.parametrize("dtype", FORWARD_DTYPES, ids=str)
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_nonfinite_forward(case, relu, dtype, gen):
    block = random_block(_spec(relu), gen)
    x = _bad_input(case, gen)
    ref = block(x)
    assert not bool(torch.isfinite(ref).all()), "the bad values must reach the reference's output"
    out = aten_forward(x.to(device=DEVICE, dtype=dtype), params_of_reference_block(block, dtype).to(device=DEVICE))
    assert_same_nonfinite(out, ref, tolerance_key(dtype), f"{case} relu={relu} {dtype}")


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_nonfinite_gradients(case, relu, gen):
    block = random_block(_spec(relu), gen).float().to(DEVICE)
    ref_block = copy.deepcopy(block).double().cpu()
    x = _bad_input(case, gen)
    grad_out = torch.randn((SHAPE[0], block.spec.out_channels, *SHAPE[2:]), generator=gen, dtype=torch.float64)
    ref, ref_grads = _reference_with_grads(ref_block, x, grad_out)
    out, grads = _fused_with_grads(block, x.float().to(DEVICE), grad_out, torch.float32)
    assert_same_nonfinite(out, ref, "float32", f"{case} relu={relu} output")
    for name, ref_grad in ref_grads.items():
        assert_same_nonfinite(grads[name], ref_grad, "float32", f"{case} relu={relu} grad {name}")


def test_refuses_mismatched_inputs(gen):
    weights = aten_weights(params_of_reference_block(random_block(_spec(), gen), torch.float32))
    with pytest.raises(ValueError, match="expected 6 input channels"):
        aten_inception_forward(torch.zeros(1, 5, 3, 3), weights)
    with pytest.raises(ValueError, match="4-D"):
        aten_inception_forward(torch.zeros(6, 3, 3), weights)
    with pytest.raises(TypeError, match="does not match the weights' dtype"):
        aten_inception_forward(torch.zeros(1, 6, 3, 3, dtype=torch.float64), weights)


def test_fold_from_units_needs_all_six(gen):
    units = units_of_reference_block(random_block(_spec(), gen))
    del units["conv5"]
    with pytest.raises(ValueError, match=r"missing conv units \['conv5'\]"):
        aten_weights_from_units(units, True, torch.float32)
