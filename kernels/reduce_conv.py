"""A reduce -> k x k Inception branch (1x1 conv, act, k x k conv, act) in one launch.

The reduced tensor is never materialised as a whole. The grid is persistent: each program walks
spatial tiles of TILE_H x TILE_W output pixels (all output channels of a tile in one program) and
owns one small scratch slot. Per tile:

1. reduce: the 1x1 reduction (+ bias, act) over the tile and its (k-1)/2 halo, in chunks of
   BLOCK_HALO pixels, goes into the program's scratch slot as rows [halo pixel, reduced channel].
   Halo pixels outside the image are stored as 0: the k x k conv zero-pads the *reduced* tensor,
   so they must not become act(bias).
2. conv: after a barrier, the k x k conv reads the scratch slot with one shifted row gather per
   tap and accumulates [TILE pixels, BLOCK_N] in fp32; bias, act and the cast run while the
   accumulator is still on chip, and the result is stored into the output channel slice.

The scratch totals programs x halo rows x reduced channels: with a grid of a few programs per SM
it stays L2-resident (about 8 MB for GoogLeNet's widest reduction on 132 SMs), unlike one slot
per tile, which would be as large as the reduced tensor. The cost is recomputing the reduction on
the halo: halo_rows / (TILE_H * TILE_W) times the reduce FLOPs (see benchmarks/NOTES.md).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import ReduceConvConfig


@triton.jit
def _reduce_conv_kernel(
    x_ptr,  # input [N, C_IN, H, W], any strides
    wr_ptr,  # reduce weights [C_IN, R], row-major
    br_ptr,  # reduce bias [R], float32
    wk_ptr,  # k x k weights [KSIZE * KSIZE, R, C_OUT], row-major, tap = kh * KSIZE + kw
    bk_ptr,  # k x k bias [C_OUT], float32
    out_ptr,  # concatenated output [N, C_TOTAL, H, W], any strides
    scratch_ptr,  # [programs, HALO_ROWS, R_PAD] in x's dtype, one slot per program
    N, H, W, C_IN, R, C_OUT, R_PAD,
    sx_n, sx_c, sx_h, sx_w,
    so_n, so_c, so_h, so_w,
    out_c0,  # output channel of the branch's channel 0
    tiles_h, tiles_w, num_tiles,
    KSIZE: tl.constexpr,
    TILE_H: tl.constexpr,
    TILE_W: tl.constexpr,
    BLOCK_M: tl.constexpr,  # next pow2 of TILE_H * TILE_W
    BLOCK_HALO: tl.constexpr,
    HALO_ROWS: tl.constexpr,  # halo pixels rounded up to BLOCK_HALO
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    APPLY_RELU: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    PAD: tl.constexpr = KSIZE // 2
    HALO_W: tl.constexpr = TILE_W + KSIZE - 1
    HALO_PIX: tl.constexpr = (TILE_H + KSIZE - 1) * HALO_W
    dtype = x_ptr.dtype.element_ty

    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    slot = scratch_ptr + pid.to(tl.int64) * (HALO_ROWS * R_PAD)

    offs_m = tl.arange(0, BLOCK_M)
    m_in_tile = offs_m < TILE_H * TILE_W
    tile_r = offs_m // TILE_W
    tile_c = offs_m % TILE_W

    for tile in range(pid, num_tiles, n_programs):
        img = tile // (tiles_h * tiles_w)
        h0 = ((tile // tiles_w) % tiles_h) * TILE_H
        w0 = (tile % tiles_w) * TILE_W
        x_img = img.to(tl.int64) * sx_n

        # 1. reduce over tile + halo into the scratch slot
        for p0 in range(0, HALO_ROWS, BLOCK_HALO):
            offs_p = p0 + tl.arange(0, BLOCK_HALO)
            hh = h0 - PAD + offs_p // HALO_W
            ww = w0 - PAD + offs_p % HALO_W
            inside = (offs_p < HALO_PIX) & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            x_rows = x_img + hh.to(tl.int64) * sx_h + ww.to(tl.int64) * sx_w
            for r0 in range(0, R_PAD, BLOCK_R):
                offs_r = r0 + tl.arange(0, BLOCK_R)
                r_mask = offs_r < R
                acc_r = tl.zeros((BLOCK_HALO, BLOCK_R), dtype=tl.float32)
                for k0 in range(0, C_IN, BLOCK_K):
                    offs_k = k0 + tl.arange(0, BLOCK_K)
                    k_mask = offs_k < C_IN
                    a = tl.load(x_ptr + x_rows[:, None] + offs_k.to(tl.int64)[None, :] * sx_c,
                                mask=inside[:, None] & k_mask[None, :], other=0.0)
                    b = tl.load(wr_ptr + offs_k[:, None] * R + offs_r[None, :],
                                mask=k_mask[:, None] & r_mask[None, :], other=0.0)
                    acc_r = tl.dot(a, b, acc_r, input_precision=INPUT_PRECISION)
                acc_r += tl.load(br_ptr + offs_r, mask=r_mask, other=0.0)[None, :]
                if APPLY_RELU:
                    acc_r = tl.maximum(acc_r, 0.0)
                # zero padding of the reduced tensor (and zero in the padded channels)
                acc_r = tl.where(inside[:, None] & r_mask[None, :], acc_r, 0.0)
                tl.store(slot + offs_p[:, None] * R_PAD + offs_r[None, :], acc_r.to(dtype))
        # the conv below reads rows other threads of this program wrote
        tl.debug_barrier()

        # 2. k x k conv from the scratch slot
        oh = h0 + tile_r
        ow = w0 + tile_c
        out_mask_m = m_in_tile & (oh < H) & (ow < W)
        out_rows = img.to(tl.int64) * so_n + oh.to(tl.int64) * so_h + ow.to(tl.int64) * so_w
        for n0 in range(0, C_OUT, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_mask = offs_n < C_OUT
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for tap in range(0, KSIZE * KSIZE):
                kh = tap // KSIZE
                kw = tap % KSIZE
                rows = (tile_r + kh) * HALO_W + (tile_c + kw)
                for r0 in range(0, R_PAD, BLOCK_R):
                    offs_r = r0 + tl.arange(0, BLOCK_R)
                    a = tl.load(slot + rows[:, None] * R_PAD + offs_r[None, :],
                                mask=m_in_tile[:, None], other=0.0)
                    b = tl.load(wk_ptr + (tap * R + offs_r[:, None]) * C_OUT + offs_n[None, :],
                                mask=(offs_r[:, None] < R) & n_mask[None, :], other=0.0)
                    acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
            acc += tl.load(bk_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
            if APPLY_RELU:
                acc = tl.maximum(acc, 0.0)
            out_ptrs = out_ptr + out_rows[:, None] + ((out_c0 + offs_n).to(tl.int64) * so_c)[None, :]
            tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=out_mask_m[:, None] & n_mask[None, :])
        # the next tile overwrites the slot: every read of this one must be done
        tl.debug_barrier()


def reduce_conv_programs(num_tiles: int, device: torch.device) -> int:
    """Persistent grid size: two programs per SM on a GPU (bounded by the tile count)."""
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(num_tiles, 2 * sms))
    # interpreter: programs run one after another, so the count only sizes the scratch
    return max(1, min(num_tiles, 4))


def launch_reduce_conv(
    x: torch.Tensor,
    w_reduce: torch.Tensor,
    b_reduce: torch.Tensor,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor,
    ksize: int,
    out: torch.Tensor,
    out_c0: int,
    relu: bool,
    input_precision: str,
    config: ReduceConvConfig,
) -> None:
    """Write act(conv_kxk(act(conv_1x1(x)))) into ``out[:, out_c0 : out_c0 + C_out]``.

    x: [N, C_in, H, W] (any strides); w_reduce: [C_in, R] contiguous; b_reduce: [R] float32;
    w_conv: [ksize*ksize, R, C_out] contiguous (tap = kh*ksize + kw); b_conv: [C_out] float32;
    out: [N, C_total, H, W] (any strides). Weights are in x's dtype.
    """
    n, c_in, h, w = x.shape
    if n * h * w == 0:
        return
    r = w_reduce.shape[1]
    c_out = w_conv.shape[2]
    tiles_h = triton.cdiv(h, config.TILE_H)
    tiles_w = triton.cdiv(w, config.TILE_W)
    num_tiles = n * tiles_h * tiles_w
    programs = reduce_conv_programs(num_tiles, x.device)
    r_pad = triton.cdiv(r, config.BLOCK_R) * config.BLOCK_R
    halo_rows = config.halo_rows(ksize)
    scratch = torch.empty((programs, halo_rows, r_pad), dtype=x.dtype, device=x.device)
    _reduce_conv_kernel[(programs,)](
        x, w_reduce, b_reduce, w_conv, b_conv, out, scratch,
        n, h, w, c_in, r, c_out, r_pad,
        *x.stride(), *out.stride(),
        out_c0, tiles_h, tiles_w, num_tiles,
        KSIZE=ksize, TILE_H=config.TILE_H, TILE_W=config.TILE_W, BLOCK_M=config.BLOCK_M,
        BLOCK_HALO=config.BLOCK_HALO, HALO_ROWS=halo_rows, BLOCK_R=config.BLOCK_R,
        BLOCK_N=config.BLOCK_N, BLOCK_K=config.BLOCK_K,
        APPLY_RELU=relu, INPUT_PRECISION=input_precision,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
