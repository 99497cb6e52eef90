"""The epilogue of a stem conv unit: inference BatchNorm, ReLU and an optional max-pool in one pass.

GoogLeNet's stem runs conv -> BatchNorm -> ReLU -> 3x3/2 max-pool (conv1, conv3) and conv ->
BatchNorm -> ReLU (conv2). Eager PyTorch writes the conv's output, then reads and writes it again
for the BN and for the ReLU, then reads it for the pool. This kernel reads the conv's output once
and writes only the pooled result:

    out[n, c, p, q] = max over the window's taps (i, j) of relu(x[n, c, i, j] * scale[c] + shift[c])

with scale = gamma / sqrt(var + eps) and shift = beta - mean * scale computed per program in
float32 from the BN's own tensors (no folded copy to keep in sync), taps outside the input (the
pool's padding, ceil_mode's last partial window) at -inf, NaN propagating through the ReLU and the
max as in ``F.relu`` and ``F.max_pool2d``. The value is computed in float32 and rounded once to the
output dtype; rounding commutes with ReLU and max, so it equals the eager result up to the BN's own
float32 arithmetic. Without a pool (``KERNEL`` 1) it is BN + ReLU alone.

Tiles are BLOCK_P output pixels x BLOCK_C channels; the taps are unrolled at compile time (ptxas
interleaves their loads with the maxes, so they are not all in flight at once: benchmarks/NOTES.md,
"The fused stem"). Offsets are int32 (the launcher refuses tensors whose
largest offset does not fit): with 64-bit offsets and 64 x 64 tiles the NCHW pool launches, where
every element needs its own address, spilled 480-1096 B (compile-check, triton 3.8); with 32-bit
offsets and 64 x 32 tiles none of the stem's launches at 224 x 224 spills (at most 190 registers,
sm_90 NCHW; compile-check's launched set, with the BN's tensors in the activations' dtype: other
input sizes, and float32 BN tensors under autocast, are specializations it does not compile).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_P = 64
BLOCK_C = 32
NUM_WARPS = 4


@triton.jit
def _bn_relu_pool_kernel(
    x_ptr,  # the conv's output [N, C, H, W], any strides
    gamma_ptr, beta_ptr, mean_ptr, var_ptr,  # the BN's weight, bias, running mean and variance [C]
    out_ptr,  # [N, C, HO, WO], any strides
    eps,
    P, C, H, W, HO, WO,  # P = N * HO * WO
    sx_n, sx_c, sx_h, sx_w,
    so_n, so_c, so_h, so_w,
    n_c_tiles,  # cdiv(C, BLOCK_C): channel tiles per pixel tile
    KERNEL: tl.constexpr,  # pool window (1: no pool)
    STRIDE: tl.constexpr,
    PAD: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    # the channel tiles of one pixel tile are adjacent programs: they share its rows in L2
    pid = tl.program_id(0)
    pid_p = pid // n_c_tiles
    pid_c = pid - pid_p * n_c_tiles

    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    gamma = tl.load(gamma_ptr + offs_c, mask=c_mask, other=1.0).to(tl.float32)
    beta = tl.load(beta_ptr + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    mean = tl.load(mean_ptr + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    var = tl.load(var_ptr + offs_c, mask=c_mask, other=1.0).to(tl.float32)
    scale = gamma / tl.sqrt(var + eps)
    shift = beta - mean * scale

    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = offs_p < P
    q = offs_p % WO
    p = (offs_p // WO) % HO
    n = offs_p // (WO * HO)
    x_img = n * sx_n
    x_chan = offs_c * sx_c
    pc_mask = p_mask[:, None] & c_mask[None, :]

    acc = tl.full((BLOCK_P, BLOCK_C), float("-inf"), tl.float32)
    for i in tl.static_range(KERNEL):
        h = p * STRIDE - PAD + i
        for j in tl.static_range(KERNEL):
            w = q * STRIDE - PAD + j
            inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)
            mask = pc_mask & inside[:, None]
            x_pix = x_img + h * sx_h + w * sx_w
            v = tl.load(x_ptr + x_pix[:, None] + x_chan[None, :], mask=mask, other=0.0).to(tl.float32)
            y = tl.maximum(v * scale[None, :] + shift[None, :], 0.0, propagate_nan=tl.PropagateNan.ALL)
            # the -inf of a tap outside the input goes in after the BN: a negative scale would
            # otherwise turn it into +inf
            acc = tl.maximum(acc, tl.where(mask, y, float("-inf")), propagate_nan=tl.PropagateNan.ALL)

    out_pix = n * so_n + p * so_h + q * so_w
    tl.store(out_ptr + out_pix[:, None] + offs_c[None, :] * so_c,
             acc.to(out_ptr.dtype.element_ty), mask=pc_mask)


def int32_offsets(t: torch.Tensor) -> bool:
    """Whether every element offset of ``t`` (its largest: sum of (size - 1) x stride) fits the
    kernel's int32 offsets."""
    return sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()) if size > 0) < 2**31


def launch_constexprs(kernel: int, stride: int, pad: int) -> dict:
    """The kernel's constexpr arguments for a launch (also what compile-check compiles)."""
    return dict(KERNEL=kernel, STRIDE=stride, PAD=pad, BLOCK_P=BLOCK_P, BLOCK_C=BLOCK_C)


def bn_relu_pool_grid(pixels: int, channels: int) -> tuple[int, int]:
    """(programs, channel tiles per pixel tile) of a launch over ``pixels`` output pixels."""
    n_c_tiles = triton.cdiv(channels, BLOCK_C)
    return triton.cdiv(pixels, BLOCK_P) * n_c_tiles, n_c_tiles


def launch_bn_relu_pool(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, mean: torch.Tensor,
                        var: torch.Tensor, eps: float, out: torch.Tensor, kernel: int, stride: int,
                        pad: int) -> int:
    """Write max-pool(relu(BN(x))) into ``out``; return the number of kernel launches made (1, or
    0 for an empty output).

    x: [N, C, H, W] (any strides, float32, float16 or bfloat16); gamma, beta, mean, var: dense [C]
    (any float dtype); out: [N, C, HO, WO] (any strides, any of x's dtypes), HO and WO being the
    pool's output size over H and W (the caller's: it alone knows ceil_mode); ``kernel`` 1 with
    stride 1 and pad 0 for no pool. Every window must hold at least one tap inside the input (as
    in F.max_pool2d, whose output sizes guarantee it). ValueError for mismatched shapes, and for
    x or out with an offset beyond int32 (int32_offsets).
    """
    n, c, h, w = x.shape
    if out.shape[:2] != (n, c):
        raise ValueError(f"out {tuple(out.shape)} does not match x {tuple(x.shape)} in batch and channels")
    for name, t in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        if t.shape != (c,) or (c > 1 and t.stride() != (1,)):
            raise ValueError(f"{name} has shape {tuple(t.shape)} and strides {t.stride()}, expected a dense ({c},)")
    if kernel == 1 and (stride, pad) != (1, 0):
        raise ValueError("without a pool (kernel 1) stride is 1 and pad 0")
    for name, t in (("x", x), ("out", out)):
        if not int32_offsets(t):
            raise ValueError(f"{name} {tuple(t.shape)} with strides {t.stride()} has offsets beyond int32")
    ho, wo = out.shape[2], out.shape[3]
    pixels = n * ho * wo
    if pixels == 0 or c == 0:
        return 0
    programs, n_c_tiles = bn_relu_pool_grid(pixels, c)
    _bn_relu_pool_kernel[(programs,)](
        x, gamma, beta, mean, var, out, float(eps), pixels, c, h, w, ho, wo,
        *x.stride(), *out.stride(), n_c_tiles,
        **launch_constexprs(kernel, stride, pad), num_warps=NUM_WARPS,
    )
    return 1
