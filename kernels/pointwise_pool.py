"""Branch 1 (1x1 conv) and branch 4 (3x3/1 max-pool -> 1x1 projection) of an Inception block,
written straight into their channel slices of the concatenated output: two launches of one kernel,
split by the IS_POOL constexpr.

Both are GEMMs over pixels: out[m, c] = act(sum_k A[m, k] * W[k, c] + b[c]), m = (n, h, w) flattened.
For branch 1, A is the input; for the pool branch, A is the 3x3/1 max-pool of the input, computed
while the A tile is loaded, so the pooled tensor never exists in memory.

Each launch's grid is one axis of (pixel tile, column tile) pairs, column tiles fastest: the
programs of one pixel tile run side by side and read its input from L2 once. Each launch has one
K loop, software-pipelined by triton (async copies, num_stages deep; wgmma on sm_90):

* branch 1 (IS_POOL False): BLOCK_M x BLOCK_N tiles, a plain GEMM whose K loop (BLOCK_K input
  channels a step) loads the input tile and the weight tile straight into the dot; an aligned
  launch (aligned_channels_last) may run the config's larger aligned tiles for the GPU
  (configs.tiles_for; 128 x 128 on sm_90 in the default config);
* pool (IS_POOL True): BLOCK_M x BLOCK_NP tiles (64 in the default config), K step BLOCK_KP: the
  nine 3x3 taps unrolled at compile time, their nine loads issued before the max (NaN
  propagating); the weight tile and, where the input is channels_last and 16-aligned, the nine
  tap tiles are async copies. A tap outside the image is masked to -inf, except in an *aligned*
  launch (aligned_channels_last) of a config with ``clamp_taps``, which clamps it into the image
  instead (same max, half the loop's instructions) and, where the config has BLOCK_NP_WIDE and
  one such tile fits pool_proj, runs that wider tile (wide_pool_tiles): the nine tap tiles are
  read once per pool column tile, so wider tiles read them fewer times. The "np32" candidate
  fills every MMA column at pool_proj 32.

Why a constexpr split and not one launch: under a runtime branch on the column tile (and with both
loops in one program) ptxas spilled in the generic and NCHW variants even with the pool loop
removed; compiled alone, each loop is spill-free (benchmarks/NOTES.md).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import alignment, gpu
from .configs import PointwiseConfig, tiles_for
from .l1_runs import l1_runs
from .tf32 import round_tf32


@triton.jit
def _max(a, b):
    # NaN propagates as in torch's max_pool2d; bf16 maximum returns fp32, hence the cast back
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL).to(a.dtype)


@triton.jit
def _max9(a, t0, t1, t2, t3, t5, t6, t7, t8):
    """The max of a 3x3 window's nine tap tiles (the centre ``a`` and its eight neighbours), as a
    balanced tree after all nine loads."""
    return _max(_max(_max(a, t0), _max(t1, t2)), _max(_max(t3, t5), _max(_max(t6, t7), t8)))


@triton.jit
def _pooled_masked(centre, mk, h_idx, w_idx, H, W, sx_h, sx_w):
    """The 3x3/1 max-pool of a tile whose centre-tap pointers are ``centre``: taps outside the
    image masked to -inf (any strides). The centre tap is inside the image for every valid lane:
    its masked lanes (pixels past M, channels past C_IN) load 0, which -inf cannot raise."""
    a = tl.load(centre, mask=mk, other=0.0)
    up = centre - sx_h
    down = centre + sx_h
    h_up = (h_idx > 0)[:, None]
    h_dn = (h_idx < H - 1)[:, None]
    w_lf = (w_idx > 0)[:, None]
    w_rt = (w_idx < W - 1)[:, None]
    # the eight other taps unrolled, all eight loads issued before the max
    t0 = tl.load(up - sx_w, mask=mk & h_up & w_lf, other=float("-inf"))
    t1 = tl.load(up, mask=mk & h_up, other=float("-inf"))
    t2 = tl.load(up + sx_w, mask=mk & h_up & w_rt, other=float("-inf"))
    t3 = tl.load(centre - sx_w, mask=mk & w_lf, other=float("-inf"))
    t5 = tl.load(centre + sx_w, mask=mk & w_rt, other=float("-inf"))
    t6 = tl.load(down - sx_w, mask=mk & h_dn & w_lf, other=float("-inf"))
    t7 = tl.load(down, mask=mk & h_dn, other=float("-inf"))
    t8 = tl.load(down + sx_w, mask=mk & h_dn & w_rt, other=float("-inf"))
    return _max9(a, t0, t1, t2, t3, t5, t6, t7, t8)


@triton.jit
def _pooled_clamped(centre, mk, up, dn, lf, rt):
    """The 3x3/1 max-pool with the taps outside the image clamped into it (``up``/``dn``/``lf``/
    ``rt``: per-pixel offsets, 0 where the row or column does not exist). A clamped tap repeats
    a pixel of the same window, so the max equals that of -inf padding (NaN included), and the
    nine loads share the tile's mask: no per-tap mask, no -inf select per element. Masked lanes
    load 0 in every tap."""
    a = tl.load(centre, mask=mk, other=0.0)
    t0 = tl.load(centre + up + lf, mask=mk, other=0.0)
    t1 = tl.load(centre + up, mask=mk, other=0.0)
    t2 = tl.load(centre + up + rt, mask=mk, other=0.0)
    t3 = tl.load(centre + lf, mask=mk, other=0.0)
    t5 = tl.load(centre + rt, mask=mk, other=0.0)
    t6 = tl.load(centre + dn + lf, mask=mk, other=0.0)
    t7 = tl.load(centre + dn, mask=mk, other=0.0)
    t8 = tl.load(centre + dn + rt, mask=mk, other=0.0)
    return _max9(a, t0, t1, t2, t3, t5, t6, t7, t8)


@triton.jit
def _store_tile(acc, b_ptr, out_ptr, out_row, m_mask, offs_n, n_mask, out_shift, so_c, APPLY_RELU: tl.constexpr):
    """Bias, act and cast; weight column ``c`` goes to output channel ``c + out_shift``."""
    acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
    if APPLY_RELU:
        acc = tl.maximum(acc, 0.0, propagate_nan=tl.PropagateNan.ALL)  # ReLU(NaN) = NaN, as F.relu
    out_col = (offs_n + out_shift).to(tl.int64) * so_c
    tl.store(out_ptr + out_row[:, None] + out_col[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=m_mask[:, None] & n_mask[None, :])


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
    n_col_tiles,  # column tiles per pixel tile: cdiv(C1, BLOCK_N), or cdiv(CP, BLOCK_NP) when IS_POOL
    IS_POOL: tl.constexpr,  # which branch this launch computes
    CLAMP_TAPS: tl.constexpr,  # pool launches: taps clamped into the image (aligned channels_last)
    APPLY_RELU: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,  # "ieee" or "tf32" (fp32 inputs only)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_NP: tl.constexpr,
    BLOCK_KP: tl.constexpr,
):
    # column tiles of one pixel tile are adjacent programs: they read its input from L2 together
    pid = tl.program_id(0)
    pid_m = pid // n_col_tiles
    pid_n = pid - pid_m * n_col_tiles
    n_total = C1 + CP  # weight row length

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < M
    w_idx = offs_m % W
    h_idx = (offs_m // W) % H
    n_idx = offs_m // (W * H)
    x_pix = n_idx.to(tl.int64) * sx_n + h_idx.to(tl.int64) * sx_h + w_idx.to(tl.int64) * sx_w
    out_row = n_idx.to(tl.int64) * so_n + h_idx.to(tl.int64) * so_h + w_idx.to(tl.int64) * so_w

    if not IS_POOL:
        # branch 1: a plain GEMM, both operands loaded straight into the dot (pipelined)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < C1
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, C_IN, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < C_IN
            a = tl.load(x_ptr + x_pix[:, None] + offs_k.to(tl.int64)[None, :] * sx_c,
                        mask=m_mask[:, None] & k_mask[None, :], other=0.0)
            b = tl.load(w_ptr + offs_k[:, None] * n_total + offs_n[None, :],
                        mask=k_mask[:, None] & n_mask[None, :], other=0.0)
            acc = tl.dot(round_tf32(a, INPUT_PRECISION), b, acc, input_precision=INPUT_PRECISION)
        _store_tile(acc, b_ptr, out_ptr, out_row, m_mask, offs_n, n_mask, out_c1, so_c, APPLY_RELU)
    else:
        # pool projection: A = the 3x3/1 max-pool of the input tile, taps clamped into the image
        # where the launch is aligned channels_last (CLAMP_TAPS: half the loop's instructions;
        # without divisibility hints the clamped offsets spilled), else masked to -inf
        if CLAMP_TAPS:
            # fixed per tile; a 0/1 factor times the stride, not a select: triton's alignment
            # analysis keeps the stride's divisibility through a product, so the tap loads stay
            # vectorized async copies
            up = -((h_idx > 0).to(tl.int32) * sx_h)[:, None]
            dn = ((h_idx < H - 1).to(tl.int32) * sx_h)[:, None]
            lf = -((w_idx > 0).to(tl.int32) * sx_w)[:, None]
            rt = ((w_idx < W - 1).to(tl.int32) * sx_w)[:, None]
        offs_n = C1 + pid_n * BLOCK_NP + tl.arange(0, BLOCK_NP)
        n_mask = offs_n < n_total
        acc = tl.zeros((BLOCK_M, BLOCK_NP), dtype=tl.float32)
        for k0 in range(0, C_IN, BLOCK_KP):
            offs_k = k0 + tl.arange(0, BLOCK_KP)
            k_mask = offs_k < C_IN
            mk = m_mask[:, None] & k_mask[None, :]
            # 8-byte tap copies, allocating in L1: the nine taps' overlapping lines hit there
            offs_t = l1_runs(k0, BLOCK_KP, x_ptr.dtype.element_ty.primitive_bitwidth)
            centre = x_ptr + x_pix[:, None] + offs_t.to(tl.int64)[None, :] * sx_c
            if CLAMP_TAPS:
                a = _pooled_clamped(centre, mk, up, dn, lf, rt)
            else:
                a = _pooled_masked(centre, mk, h_idx, w_idx, H, W, sx_h, sx_w)
            # keeps the max in the load layout: without it triton moves the dot-operand
            # conversion above the max, one shared-memory round trip per tap
            a = tl.where(mk, a, 0.0).to(x_ptr.dtype.element_ty)
            b = tl.load(w_ptr + offs_k[:, None] * n_total + offs_n[None, :],
                        mask=k_mask[:, None] & n_mask[None, :], other=0.0)
            acc = tl.dot(round_tf32(a, INPUT_PRECISION), b, acc, input_precision=INPUT_PRECISION)
        _store_tile(acc, b_ptr, out_ptr, out_row, m_mask, offs_n, n_mask, out_cp - C1, so_c, APPLY_RELU)


# An aligned channels_last pool launch (aligned_channels_last) of a config with clamp_taps clamps
# its taps and may run wide tiles; an aligned branch-1 launch may run the config's aligned tiles.
# compile-check compiles each as one specialization per config and dtype: these runtime ints take
# any int32 value (wide tiles: n_col_tiles is 1), the unit channel strides are 1, and every other
# int is an int32 divisible by 16. Without those hints the clamped offsets spilled 16 B (sm_90)
# and wide tiles 350-690 B, so an unaligned launch keeps the -inf masks and BLOCK_NP, and its
# branch 1 the config's own tiles.
ALIGNED_FREE_INTS: tuple[str, ...] = ("M", "H", "W", "n_col_tiles")
ALIGNED_UNIT_INTS: tuple[str, ...] = ("sx_c", "so_c")


def aligned_channels_last(ints: dict[str, int], tensors: tuple[torch.Tensor, ...]) -> bool:
    """Whether a launch with these runtime ints (the kernel's names; n_col_tiles left out) is the
    aligned channels_last specialization (kernels/alignment.py) with ALIGNED_FREE_INTS free."""
    return alignment.aligned_channels_last(ints, tensors, ALIGNED_FREE_INTS, ALIGNED_UNIT_INTS)


def wide_pool_tiles(config: PointwiseConfig, pool_proj: int, aligned: bool) -> bool:
    """Whether a pool launch runs BLOCK_NP_WIDE-wide tiles: the config has them, ``pool_proj``
    needs more than one BLOCK_NP tile and fits one wide tile, and the launch is ``aligned``
    (aligned_channels_last; NCHW pool variants spilled at 128 columns)."""
    return bool(config.BLOCK_NP_WIDE) and config.BLOCK_NP < pool_proj <= config.BLOCK_NP_WIDE and aligned


def pool_tile_width(config: PointwiseConfig, wide: bool) -> int:
    """BLOCK_NP of a pool launch: BLOCK_NP_WIDE where ``wide`` (see wide_pool_tiles)."""
    if wide and not config.BLOCK_NP_WIDE:
        raise ValueError(f"{config} has no wide pool tiles (BLOCK_NP_WIDE 0)")
    return config.BLOCK_NP_WIDE if wide else config.BLOCK_NP


def launch_constexprs(config: PointwiseConfig, pool: bool, relu: bool, input_precision: str,
                      clamped: bool = False, wide: bool = False) -> dict:
    """The kernel's constexpr arguments for a launch (also what compile-check compiles): ``pool``
    picks the branch; pool launches only: ``clamped`` clamps the taps (an aligned_channels_last
    launch of a config with clamp_taps), ``wide`` (clamped only) picks the pool tile width
    (pool_tile_width)."""
    if (clamped or wide) and not pool:
        raise ValueError("clamped taps and wide tiles are for pool launches only")
    if clamped and not config.clamp_taps:
        raise ValueError(f"{config} keeps its taps masked (clamp_taps False)")
    if wide and not clamped:
        raise ValueError("wide pool tiles are for clamped (aligned) launches only")
    return dict(IS_POOL=pool, CLAMP_TAPS=clamped, APPLY_RELU=relu, INPUT_PRECISION=input_precision,
                BLOCK_M=config.BLOCK_M, BLOCK_N=config.BLOCK_N, BLOCK_K=config.BLOCK_K,
                BLOCK_NP=pool_tile_width(config, wide), BLOCK_KP=config.BLOCK_KP)


def pointwise_grid(m: int, width: int, pool: bool, config: PointwiseConfig, wide: bool = False) -> tuple[int, int]:
    """(programs, column tiles per pixel tile) of one launch over ``m`` pixels and ``width``
    output channels: one program per (pixel tile, column tile), BLOCK_N-wide column tiles for
    branch 1, pool_tile_width(config, wide)-wide for the pool projection."""
    n_col_tiles = triton.cdiv(width, pool_tile_width(config, wide) if pool else config.BLOCK_N)
    return triton.cdiv(m, config.BLOCK_M) * n_col_tiles, n_col_tiles


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
) -> int:
    """Write branch 1 and the pool projection of ``x`` into ``out``; return the number of kernel
    launches made (2, or fewer when a branch has no columns or ``x`` no pixels).

    x: [N, C_in, H, W] (any strides); weight: [C_in, ch1x1 + pool_proj] contiguous, x's dtype;
    bias: [ch1x1 + pool_proj] float32; out: [N, C_total, H, W] (any strides), branch 1 goes to
    channels [out_c1, out_c1 + ch1x1) and the pool projection to [out_cp, out_cp + pool_proj).
    With input_precision "tf32" the weight must hold TF32 values already (kernels/tf32.py,
    round_tf32_tensor, done by the forward); the kernel rounds its input and pooled tiles itself.
    Where ``x`` and ``out`` are channels_last with 16-aligned channel counts, offsets and
    strides (aligned_channels_last), branch 1 runs the config's aligned tiles for the GPU where
    configs.tiles_for says so, and, where the config clamps (clamp_taps), the pool launch clamps
    its taps and runs wide tiles where wide_pool_tiles says so.
    """
    n, c_in, h, w = x.shape
    m = n * h * w
    cp = weight.shape[1] - ch1x1
    if m == 0:
        return 0
    launches = 0
    # the kernel's runtime ints before n_col_tiles, by name and in its parameter order
    ints = dict(M=m, H=h, W=w, C_IN=c_in, C1=ch1x1, CP=cp,
                **dict(zip(("sx_n", "sx_c", "sx_h", "sx_w"), x.stride())),
                **dict(zip(("so_n", "so_c", "so_h", "so_w"), out.stride())),
                out_c1=out_c1, out_cp=out_cp)
    aligned = aligned_channels_last(ints, (x, weight, bias, out))
    # two launches of one kernel: branch 1, then the pool projection (IS_POOL)
    for pool, width in ((False, ch1x1), (True, cp)):
        if width == 0:
            continue
        launches += 1
        clamped = pool and aligned and config.clamp_taps
        wide = clamped and wide_pool_tiles(config, cp, aligned)
        tiles = config
        if not pool and aligned and config.aligned:
            tiles = tiles_for(config, m, width, gpu.sm_arch(x.device), gpu.sms_for_tiles(gpu.sm_count(x.device)))
        programs, n_col_tiles = pointwise_grid(m, width, pool, tiles, wide)
        _pointwise_pool_kernel[(programs,)](
            x, weight, bias, out, *ints.values(), n_col_tiles,
            **launch_constexprs(tiles, pool, relu, input_precision, clamped, wide),
            num_warps=tiles.num_warps, num_stages=tiles.num_stages,
        )
    return launches
