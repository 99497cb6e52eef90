"""The stem epilogue kernel (kernels/bn_relu_pool.py) against BatchNorm, ReLU and max-pool in
float64 on the same input values: GoogLeNet's stem pools and their edges, both layouts, every
kernel dtype, outputs poisoned with NaN, and NaN/Inf inputs (Triton interpreter on the CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from block_helpers import DEVICE, random_input
from fused_inception.dtypes import KERNEL_DTYPES
from fused_inception.kernels.bn_relu_pool import launch_bn_relu_pool
from fused_inception.stem import pool_geometry, pool_output_size
from fused_inception.tolerances import assert_close, assert_same_nonfinite, poisoned, tolerance_key

# (C, H, W, pool as (kernel, stride, padding, ceil_mode) or None): GoogLeNet's stem pools (3x3/2
# ceil) at even and odd sizes (ceil_mode adds a partial last window at even ones), the unit without
# a pool (conv2), a padded floor-mode pool, more channels than one channel tile, and more output
# pixels than one pixel tile (BLOCK_P 64: 2 x 9 x 9 = 162)
GEOMETRIES = [
    (5, 9, 7, (3, 2, 0, True)),
    (6, 8, 8, (3, 2, 0, True)),
    (70, 5, 6, None),
    (4, 7, 6, (3, 2, 1, False)),
    (3, 18, 17, (3, 2, 0, True)),
]


def _random_bn(c: int, gen: torch.Generator) -> nn.BatchNorm2d:
    """A float64 eval BN with nonzero statistics and gamma of either sign."""
    bn = nn.BatchNorm2d(c, eps=1e-3).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
        bn.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
        bn.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
        bn.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.25)
    return bn


def _pool(geometry) -> nn.MaxPool2d | None:
    if geometry is None:
        return None
    kernel, stride, padding, ceil_mode = geometry
    return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)


def _bn_params(bn: nn.BatchNorm2d, dtype: torch.dtype) -> list[torch.Tensor]:
    """The BN's four tensors in ``dtype``, as a model in that dtype holds them."""
    return [t.detach().to(dtype) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]


def _reference(y: torch.Tensor, bn: nn.BatchNorm2d, pool: nn.MaxPool2d | None, param_dtype: torch.dtype) -> torch.Tensor:
    """Float64 BN (with its tensors rounded to ``param_dtype``, as the kernel gets them), ReLU, pool."""
    gamma, beta, mean, var = (t.double() for t in _bn_params(bn, param_dtype))
    out = F.relu(F.batch_norm(y.double(), mean, var, gamma, beta, False, 0.0, bn.eps))
    return pool(out) if pool is not None else out


def _run_epilogue(y: torch.Tensor, bn: nn.BatchNorm2d, pool: nn.MaxPool2d | None,
                  param_dtype: torch.dtype) -> torch.Tensor:
    """bn_relu_pool's launch into a NaN-poisoned output of the reference's shape, y's layout."""
    kernel, stride, padding, ceil_mode = pool_geometry(pool)
    n, c, h, w = y.shape
    ho, wo = (pool_output_size(s, kernel, stride, padding, ceil_mode) for s in (h, w))
    layout = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = poisoned((n, c, ho, wo), y.dtype, y.device, layout)
    params = [t.to(y.device) for t in _bn_params(bn, param_dtype)]
    assert launch_bn_relu_pool(y, *params, bn.eps, out, kernel, stride, padding) == 1
    return out


@pytest.mark.parametrize("params", ["model-dtype", "float32"])
@pytest.mark.parametrize("dtype", KERNEL_DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}x{g[1]}x{g[2]}-pool{g[3]}")
def test_epilogue_matches_float64(geometry, layout, dtype, params, gen):
    """Signed input, nonzero statistics, gamma of either sign: the kernel's output (NaN-poisoned
    before it runs) against BN, ReLU and the pool in float64 on the same input and BN values, at
    the dtype's tolerance; the output's shape is F.max_pool2d's. The BN's tensors in the input's
    dtype (a model in that dtype) or in float32 (half-precision activations under autocast)."""
    c, h, w, pool_geometry = geometry
    bn, pool = _random_bn(c, gen), _pool(pool_geometry)
    param_dtype = dtype if params == "model-dtype" else torch.float32
    y = random_input((2, c, h, w), gen).to(dtype)
    if layout == "channels_last":
        y = y.contiguous(memory_format=torch.channels_last)
    ref = _reference(y, bn, pool, param_dtype)
    out = _run_epilogue(y.to(DEVICE), bn, pool, param_dtype)
    assert out.shape == ref.shape
    assert_close(out, ref, tolerance_key(dtype), f"{layout} {dtype}")


# (what, positions (n, c, h, w) and values) in an 8 x 8 map: NaN and both infinities, one at row and
# column 2, which two stride-2 windows share, and some in row or column 7, which only ceil_mode's
# partial last window covers
NONFINITE = {
    "nan": [(0, 1, 2, 2, math.nan), (1, 1, 7, 3, math.nan)],
    "inf": [(0, 0, 0, 0, math.inf), (1, 2, 7, 7, -math.inf)],
    "mixed": [(0, 3, 4, 1, math.nan), (0, 3, 4, 2, math.inf), (1, 0, 3, 3, -math.inf), (1, 4, 1, 7, math.nan)],
}


@pytest.mark.parametrize("case", list(NONFINITE))
def test_epilogue_nonfinite_like_the_modules(case, gen):
    """NaN and +-Inf in the conv's output: the kernel's NaN/Inf pattern is the float64 modules'
    (NaN through the ReLU and the max, -Inf to 0 by the ReLU, +Inf or -Inf times a negative
    gamma), finite positions within tolerance."""
    c, h, w = 5, 8, 8
    bn, pool = _random_bn(c, gen), _pool((3, 2, 0, True))
    with torch.no_grad():
        bn.weight[1:3] = -bn.weight[1:3].abs()  # the infinities of channel 2 flip sign
    y = random_input((2, c, h, w), gen)
    for n, ch, i, j, value in NONFINITE[case]:
        y[n, ch, i, j] = value
    y = y.float().contiguous(memory_format=torch.channels_last)
    ref = _reference(y, bn, pool, torch.float32)
    assert not bool(torch.isfinite(ref).all()), "the bad values must reach the reference's output"
    assert not bool(torch.isfinite(ref[..., -1]).all() and torch.isfinite(ref[..., -1, :]).all()), \
        "a bad value must reach a partial window"
    assert_same_nonfinite(_run_epilogue(y.to(DEVICE), bn, pool, torch.float32), ref, "float32", case)


def test_launcher_refuses_offsets_beyond_int32():
    """The kernel's offsets are int32: a tensor whose largest offset does not fit is refused before
    any launch (meta tensors: nothing is allocated), one that just fits is accepted by the check."""
    from fused_inception.kernels.bn_relu_pool import int32_offsets

    def meta(shape, strides):
        return torch.empty_strided(shape, strides, device="meta")

    assert int32_offsets(meta((2, 4, 1, 1), (2**31 - 4, 1, 1, 1)))  # largest offset 2**31 - 1
    assert not int32_offsets(meta((2, 4, 1, 1), (2**31 - 3, 1, 1, 1)))
    big = meta((1, 4, 2**16, 2**15), (4 * 2**31, 1, 2**17, 4))
    params = [meta((4,), (1,)) for _ in range(4)]
    with pytest.raises(ValueError, match="beyond int32"):
        launch_bn_relu_pool(big, *params, 1e-3, meta((1, 4, 2**15, 2**14), (4 * 2**29, 1, 2**16, 4)), 3, 2, 0)
