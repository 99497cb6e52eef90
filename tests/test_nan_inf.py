"""NaN and +-Inf in the input: the fused block shows them where the original modules do.

Every path: the Triton kernels (interpreter on the CPU, compiled on CUDA), the PyTorch path, the
autograd backward, and the BN-training op. NaN, +Inf and -Inf sit at interior, edge and corner
pixels and at a tile boundary (the 9 x 11 images of a batch of 2 span several pixel tiles of the
reduce -> k x k kernel, so a bad pixel lands in another tile's halo), one at a time and all
together; each spreads through every branch's own field (one pixel for the 1x1 branch, 3 x 3
for the pool branch, k x k for the reduce branches). Outputs must have NaN, +Inf and -Inf at
exactly the reference's positions and match it elsewhere; gradients likewise.

The compiled code is checked too: the PTX of both kernels, compiled ahead of time for sm_80 and
sm_90, uses only NaN-propagating float max instructions (``max.NaN.*``) for ReLU and the pool.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import fused_inception as fi
from block_helpers import CUDA, DEVICE, random_input
from fused_inception import inception_forward
from fused_inception import forward
from fused_inception.folding import params_of_reference_block
from fused_inception.models.randomize import random_block
from fused_inception.tolerances import assert_same_nonfinite, poisoned, tolerance_key
from fused_inception.spec import InceptionSpec

# bf16 dots are wrong in the Triton interpreter: on the CPU fp16 stands in for the half types
KERNEL_DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if CUDA else [])

SHAPE = (2, 6, 9, 11)  # N*H*W = 198 pixels: several BLOCK_M tiles


def _spec(relu: bool, batch_norm: bool = True) -> InceptionSpec:
    return InceptionSpec(6, 3, 4, 5, 2, 3, 4, k3=3, k5=5, batch_norm=batch_norm, conv_bias=not batch_norm,
                         relu=relu)


NAN, INF = math.nan, math.inf
# (n, c, h, w, value); pixel (0, 5, 9) is flattened index 64, the first pixel of the second tile
# of a 64-pixel tile
CASES = {
    "nan-interior": [(0, 2, 4, 5, NAN)],
    "posinf-corner": [(1, 0, 0, 0, INF)],
    "neginf-edge": [(1, 5, 8, 6, -INF)],
    "neginf-tile-boundary": [(0, 3, 5, 9, -INF)],
    "all-together": [(0, 4, 0, 7, NAN), (0, 1, 5, 10, INF), (1, 3, 3, 0, -INF), (1, 2, 8, 10, NAN),
                     (0, 0, 5, 9, INF), (1, 5, 4, 4, -INF)],
}


def _bad_input(case: str, gen: torch.Generator) -> torch.Tensor:
    x = random_input(SHAPE, gen)
    for n, c, h, w, value in CASES[case]:
        x[n, c, h, w] = value
    return x


@pytest.mark.parametrize("dtype", KERNEL_DTYPES, ids=str)
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("path", ["kernels", "pytorch"])
def test_forward_nonfinite_parity(path, case, relu, dtype, gen, monkeypatch):
    if path == "pytorch":
        monkeypatch.setenv("TRITON_INTERPRET", "0")
    device = DEVICE if path == "kernels" else "cpu"
    block = random_block(_spec(relu), gen)
    x = _bad_input(case, gen).to(dtype)
    ref = block(x.double())
    assert not bool(torch.isfinite(ref).all()), "the bad values must reach the reference's output"
    xd = x.to(device)
    assert forward.uses_triton(xd) == (path == "kernels")
    params = params_of_reference_block(block, dtype).to(device=device)
    out = poisoned((SHAPE[0], block.spec.out_channels, *SHAPE[2:]), dtype, device)
    inception_forward(xd, params, out=out)
    assert_same_nonfinite(out, ref, tolerance_key(dtype), f"{path} {case} relu={relu} {dtype}")


def _grads(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"x": x.grad, **{name: p.grad for name, p in model.named_parameters()}}


def _run_with_grad(model, x, grad_out):
    x = x.detach().clone().requires_grad_()
    out = model(x)
    out.backward(grad_out.to(out.dtype))
    return out, _grads(model, x)


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["eval-fused-op", "bn-train-op"])
def test_backward_nonfinite_parity(mode, case, relu, gen):
    """Outputs, input and parameter gradients (and BN buffers in training) against the float64
    block: NaN/Inf at the same positions, the same values elsewhere. Training runs the
    BN-training op (BN after every conv); eval runs the fused kernels forward. Gradients are held
    to the larger of the float32 tolerance and the plain float32 block's own error
    (parity.BASELINE_FACTOR): this spec's 2-wide reduce5 has a bias gradient of two sums, and with
    an input pixel at +Inf one of them can be all that is finite, a sum that cancels to near zero
    (seen: 1.10e-5 relative where the tolerance is 1e-5, FI_TEST_SEED=1164612629)."""
    block = random_block(_spec(relu), gen)
    training = mode == "bn-train-op"
    fused = fi.FusedInception.from_module(copy.deepcopy(block).float().to(DEVICE)).train(training)
    plain = copy.deepcopy(block).float().to(DEVICE).train(training)
    reference = block.train(training)
    x = _bad_input(case, gen)
    grad_out = torch.randn((SHAPE[0], block.spec.out_channels, *SHAPE[2:]), generator=gen, dtype=torch.float64)
    ref_out, ref_grads = _run_with_grad(reference, x, grad_out)
    out, grads = _run_with_grad(fused, x.float().to(DEVICE), grad_out.to(DEVICE))
    _, plain_grads = _run_with_grad(plain, x.float().to(DEVICE), grad_out.to(DEVICE))
    what = f"{mode} {case} relu={relu}"
    assert_same_nonfinite(out, ref_out, "float32", f"{what} output")
    assert ref_grads.keys() == grads.keys()
    for name, ref_grad in ref_grads.items():
        assert grads[name] is not None, name
        assert_same_nonfinite(grads[name], ref_grad, "float32", f"{what} grad {name}", baseline=plain_grads[name])
    if training:
        ref_buffers = dict(reference.named_buffers())
        for name, b in fused.named_buffers():
            if b.is_floating_point():
                assert_same_nonfinite(b, ref_buffers[name], "float32", f"{what} buffer {name}")
            else:
                assert torch.equal(b.cpu(), ref_buffers[name]), name


def test_bad_values_reach_every_branch(gen):
    """The cases above are not vacuous: one NaN in the input is NaN in each branch's slice of
    the reference, over that branch's own field (1 pixel, 3 x 3 pool window, k x k)."""
    block = random_block(_spec(relu=False, batch_norm=False), gen)
    ref = block(_bad_input("nan-interior", gen))
    spec = block.spec
    starts = [0, spec.ch1x1, spec.ch1x1 + spec.ch3x3, spec.ch1x1 + spec.ch3x3 + spec.ch5x5, spec.out_channels]
    fields = [1, spec.k3, spec.k5, 3]  # nonzero random weights: a NaN pixel spreads over the field
    for lo, hi, k in zip(starts, starts[1:], fields):
        nan_pixels = ref[0, lo:hi].isnan().any(0)
        assert int(nan_pixels.sum()) == k * k, (lo, hi, k)
        assert bool(nan_pixels[4 - k // 2:4 + k // 2 + 1, 5 - k // 2:5 + k // 2 + 1].all())


# The AOT compile (interpreter off, so in a subprocess): the PTX's float max instructions.
_PTX_PROBE = """
import json, re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from fused_inception.tools.compile_check import aot

# pointwise_pool: its pool-projection launch (IS_POOL), the one with the pool's max
picks = {"pointwise_pool": ("default", None), "reduce_conv": ("mma", 3)}
found = {}
for v in aot.launch_variants():
    want = picks.get(v.kernel)
    if (want and (v.config_name, v.ksize) == want and v.dtype == "float16" and v.relu
            and v.layout == "nhwc" and v.pool is not False and v.kernel not in found):
        found[v.kernel] = v
result = {}
for kernel, v in sorted(found.items()):
    cs = aot.compile_spec(v)
    for arch in (80, 90):
        compiled = triton.compile(ASTSource(cs.fn, cs.signature, cs.constexprs, cs.attrs),
                                  target=GPUTarget("cuda", arch, 32), options=dict(cs.options))
        ptx = compiled.asm["ptx"]
        result[f"{kernel} sm_{arch}"] = re.findall(
            r"\\bmax(?:\\.ftz)?(?:\\.NaN)?\\.(?:f16x2|f16|bf16x2|bf16|f32)\\b", ptx)
json.dump(result, sys.stdout)
"""


def test_compiled_ptx_uses_nan_propagating_max():
    """Both kernels (fp16, ReLU on: the pool's max in fp16 and the ReLU's in fp32) compiled for
    sm_80 and sm_90: every float max in the PTX is max.NaN, and there is one for the ReLU (f32)
    and, in the pointwise/pool kernel, one for the pool (f16 or f16x2)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", _PTX_PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    assert sorted(found) == ["pointwise_pool sm_80", "pointwise_pool sm_90", "reduce_conv sm_80", "reduce_conv sm_90"]
    for name, instructions in found.items():
        assert instructions, f"{name}: no float max in the PTX"
        plain = [i for i in instructions if ".NaN." not in i]
        assert not plain, f"{name}: non-NaN-propagating max instructions {sorted(set(plain))}"
        assert "max.NaN.f32" in instructions, \
            f"{name}: no NaN-propagating f32 max (the ReLU): {sorted(set(instructions))}"
        if name.startswith("pointwise_pool"):
            assert {"max.NaN.f16", "max.NaN.f16x2"} & set(instructions), f"{name}: no NaN-propagating f16 pool max"
