"""Branch 1 (1x1 conv) and branch 4 (3x3/1 max-pool -> 1x1 projection) of an Inception block,
in one launch, written straight into their channel slices of the concatenated output.

Both are GEMMs over pixels: out[m, c] = act(sum_k A[m, k] * W[k, c] + b[c]), m = (n, h, w) flattened.
For branch 1, A is the input; for the pool branch, A is the 3x3/1 max-pool of the input, computed
while the A tile is loaded (nine shifted loads, -inf outside the image, elementwise max), so the
pooled tensor never exists in memory. The program id along axis 1 picks the branch: the first
``n_tiles_1`` column tiles belong to branch 1, the rest to the pool projection.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import PointwiseConfig


@triton.jit
def _pointwise_pool_kernel(
    x_ptr,  # input [N, C_IN, H, W], any strides (NCHW or channels_last)
    w_ptr,  # weights [C_IN, C1 + CP], row-major: columns [0, C1) branch 1, [C1, C1+CP) pool proj
    b_ptr,  # bias [C1 + CP], float32 (BN folded)
    out_ptr,  # concatenated output [N, C_OUT_TOTAL, H, W], any strides
    M, H, W, C_IN, C1, CP,  # M = N * H * W
    sx_n, sx_c, sx_h, sx_w,
    so_n, so_c, so_h, so_w,
    out_c1,  # output channel of branch 1's column 0
    out_cp,  # output channel of the pool projection's column 0
    n_tiles_1,  # column tiles of branch 1; tiles at and above belong to the pool branch
    APPLY_RELU: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,  # "ieee" or "tf32" (fp32 inputs only)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    is_pool = (pid_n >= n_tiles_1).to(tl.int32)
    tile_n = pid_n - is_pool * n_tiles_1
    col_lo = is_pool * C1  # first weight column of this branch
    col_hi = C1 + is_pool * CP  # one past its last
    # output channel = weight column + shift
    out_shift = out_c1 + is_pool * (out_cp - C1 - out_c1)
    n_taps = 1 + 8 * is_pool  # branch 1 reads the centre tap only

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < M
    w_idx = offs_m % W
    h_idx = (offs_m // W) % H
    n_idx = offs_m // (W * H)
    x_row = n_idx.to(tl.int64) * sx_n

    offs_n = col_lo + tile_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < col_hi

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, C_IN, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < C_IN
        x_col = offs_k.to(tl.int64) * sx_c
        a = tl.full((BLOCK_M, BLOCK_K), float("-inf"), x_ptr.dtype.element_ty)
        for t in range(0, n_taps):
            # tap t of the 3x3 window; (0, 0) when n_taps == 1
            dh = (t // 3 - 1) * is_pool
            dw = (t % 3 - 1) * is_pool
            hh = h_idx + dh
            ww = w_idx + dw
            inside = m_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            ptrs = x_ptr + (x_row + hh.to(tl.int64) * sx_h + ww.to(tl.int64) * sx_w)[:, None] + x_col[None, :]
            tap = tl.load(ptrs, mask=inside[:, None] & k_mask[None, :], other=float("-inf"))
            # NaN propagates as in torch's max_pool2d; bf16 maximum returns fp32
            a = tl.maximum(a, tap, propagate_nan=tl.PropagateNan.ALL).to(a.dtype)
        # -inf must not reach the dot: -inf * 0 (masked weight) is NaN
        a = tl.where(m_mask[:, None] & k_mask[None, :], a, 0.0).to(x_ptr.dtype.element_ty)
        b = tl.load(w_ptr + offs_k[:, None] * (C1 + CP) + offs_n[None, :],
                    mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)

    acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
    if APPLY_RELU:
        acc = tl.maximum(acc, 0.0, propagate_nan=tl.PropagateNan.ALL)  # ReLU(NaN) = NaN, as F.relu
    out_row = n_idx.to(tl.int64) * so_n + h_idx.to(tl.int64) * so_h + w_idx.to(tl.int64) * so_w
    out_col = (offs_n + out_shift).to(tl.int64) * so_c
    tl.store(out_ptr + out_row[:, None] + out_col[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=m_mask[:, None] & n_mask[None, :])


def launch_constexprs(config: PointwiseConfig, relu: bool, input_precision: str) -> dict:
    """The kernel's constexpr arguments for a launch (also what compile-check compiles)."""
    return dict(APPLY_RELU=relu, INPUT_PRECISION=input_precision,
                BLOCK_M=config.BLOCK_M, BLOCK_N=config.BLOCK_N, BLOCK_K=config.BLOCK_K)


def launch_pointwise_pool(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    ch1x1: int,
    out: torch.Tensor,
    out_c1: int,
    out_cp: int,
    relu: bool,
    input_precision: str,
    config: PointwiseConfig,
) -> None:
    """Write branch 1 and the pool projection of ``x`` into ``out``.

    x: [N, C_in, H, W] (any strides); weight: [C_in, ch1x1 + pool_proj] contiguous, x's dtype;
    bias: [ch1x1 + pool_proj] float32; out: [N, C_total, H, W] (any strides), branch 1 goes to
    channels [out_c1, out_c1 + ch1x1) and the pool projection to [out_cp, out_cp + pool_proj).
    """
    n, c_in, h, w = x.shape
    m = n * h * w
    cp = weight.shape[1] - ch1x1
    if m == 0:
        return
    n_tiles_1 = triton.cdiv(ch1x1, config.BLOCK_N)
    n_tiles_p = triton.cdiv(cp, config.BLOCK_N)
    grid = (triton.cdiv(m, config.BLOCK_M), n_tiles_1 + n_tiles_p)
    _pointwise_pool_kernel[grid](
        x, weight, bias, out,
        m, h, w, c_in, ch1x1, cp,
        *x.stride(), *out.stride(),
        out_c1, out_cp, n_tiles_1,
        **launch_constexprs(config, relu, input_precision),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
