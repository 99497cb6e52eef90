"""A reduce -> k x k Inception branch (1x1 conv, act, k x k conv, act) in one launch.

The reduced tensor is never materialised as a whole. Output pixels are tiled along the flattened
pixel index p = (n*H + h)*W + w, BLOCK_M consecutive pixels per tile (tiles cross row and image
boundaries, so GoogLeNet's 28/14/7 grids waste no lanes). The pixels a tile's k x k taps read form
one contiguous run of that index: [p0 - OFF, p0 + BLOCK_M + OFF) with OFF = PAD*W + PAD, PAD =
(k-1)/2.

Work items are (tile, column split) pairs: ``n_split`` programs share a tile when tiles are too few
to fill the GPU, each producing every ``n_split``-th block of BLOCK_N output channels (and each
recomputing the tile's reduction; grid_for_sms). The grid is persistent: each program walks work
items and owns one scratch slot. Per item:

1. reduce: the 1x1 reduction (+ bias, act) over the tile's run of pixels goes into the program's
   scratch slot as rows [run position, reduced channel]. Chunks of BLOCK_HALO rows (64 in the tensor-core configs) x
   BLOCK_R reduced channels, each one GEMM whose K loop over input channels is software-pipelined
   (async copies, num_stages deep); with BLOCK_R >= R the input run is read once. Positions outside
   the tensor are stored as 0.
2. conv: after a barrier, for each BLOCK_N block of output channels, ONE flattened K loop over
   (tap, BLOCK_RK block of reduced channels), pipelined like the reduce loop: tap (kh, kw) of
   output lane i reads scratch row i + kh*W + kw, masked to 0 where the tap falls outside the image
   (the k x k conv zero-pads the *reduced* tensor, so padding must be 0, not act(bias); the mask
   also stops a tap from wrapping into the next row or image). Each tap's reduced operand is read
   once per BLOCK_M x BLOCK_N tile (BLOCK_N 64 in the shipped bf16/fp16 configs, 32 in the TF32 one;
   128 spilled in the generic variants, benchmarks/NOTES.md; aligned channels_last launches run
   larger tiles, see below). The fp32 accumulator gets bias, act and the cast on
   chip and is stored into the output channel slice. Configs with num_stages 1 (the fp32 FMA one)
   run nested tap / reduced-channel loops instead: nothing to pipeline, and ptxas spilled the
   flattened form there.

The scratch totals programs x halo rows x reduced channels: with a grid of a few programs per SM it
stays L2-resident, unlike one slot per tile, which would be as large as the reduced tensor. The
cost is recomputing the reduction on the run's 2*OFF extra pixels: halo_rows / BLOCK_M times the
reduce FLOPs (BLOCK_M 64, BLOCK_HALO 64: 2x for k = 3 at W = 7, 14 or 28, 3x for k = 5 at W = 28),
and once more per column split (benchmarks/NOTES.md).

Tiles: a config's tiles serve any launch; its ``aligned`` tiles (per SM architecture) serve the
aligned channels_last launches (kernels/alignment.py; all of GoogLeNet's on channels_last input),
where the divisibility hints leave the registers for larger tiles: 128 x 128 on sm_90, 128 x 64 on
sm_80 for fp16/bf16 (configs.py). Larger tiles read the k x k weights and the reduced operand fewer
times per output pixel and recompute a smaller share of halo (configs.tiles_for picks them).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import alignment, gpu
from .configs import ReduceConvConfig, tiles_for
from .l1_runs import l1_runs
from .tf32 import round_tf32


@triton.jit
def _conv_step(acc, slot, wk_ptr, tap, r0, lanes, h_idx, w_idx, m_mask, offs_n, n_mask, H, W, R, R_PAD, C_OUT,
               KSIZE: tl.constexpr, BLOCK_RK: tl.constexpr, L1_SCRATCH: tl.constexpr,
               INPUT_PRECISION: tl.constexpr):
    """acc += tap ``tap``'s reduced channels [r0, r0 + BLOCK_RK) x its k x k weights. L1_SCRATCH:
    the scratch copies are 8 bytes wide (l1_runs), so they allocate in L1, where the other taps'
    overlapping rows then hit; else as wide as the alignment analysis allows (16 bytes, which
    bypass L1, in the aligned specialization; generic variants issue plain loads)."""
    PAD: tl.constexpr = KSIZE // 2
    kh = tap // KSIZE
    kw = tap % KSIZE
    hh = h_idx + kh - PAD
    ww = w_idx + kw - PAD
    tap_ok = m_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
    offs_r = r0 + tl.arange(0, BLOCK_RK)
    rows = lanes + kh * W + kw
    if L1_SCRATCH:
        offs_a = l1_runs(r0, BLOCK_RK, slot.dtype.element_ty.primitive_bitwidth)
    else:
        offs_a = offs_r
    # TF32 dots: the scratch holds rounded values (the reduce writes them so), the weights come rounded
    a = tl.load(slot + rows[:, None] * R_PAD + offs_a[None, :], mask=tap_ok[:, None], other=0.0)
    b = tl.load(wk_ptr + (tap * R + offs_r[:, None]) * C_OUT + offs_n[None, :],
                mask=(offs_r[:, None] < R) & n_mask[None, :], other=0.0)
    return tl.dot(a, b, acc, input_precision=INPUT_PRECISION)


@triton.jit
def _reduce_conv_kernel(
    x_ptr,  # input [N, C_IN, H, W], any strides
    wr_ptr,  # reduce weights [C_IN, R], row-major
    br_ptr,  # reduce bias [R], float32
    wk_ptr,  # k x k weights [KSIZE * KSIZE, R, C_OUT], row-major, tap = kh * KSIZE + kw
    bk_ptr,  # k x k bias [C_OUT], float32
    out_ptr,  # concatenated output [N, C_TOTAL, H, W], any strides
    scratch_ptr,  # [programs, halo_rows, R_PAD] in x's dtype, one slot per program
    M, H, W, C_IN, R, C_OUT, R_PAD,  # M = N * H * W; R_PAD = R rounded up to BLOCK_R
    sx_n, sx_c, sx_h, sx_w,
    so_n, so_c, so_h, so_w,
    out_c0,  # output channel of the branch's channel 0
    halo_rows,  # BLOCK_M + 2 * (PAD * W + PAD), rounded up to BLOCK_HALO
    num_items,  # tiles * n_split
    n_split,  # programs sharing one tile's output channels
    KSIZE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_HALO: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_RK: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    FLAT_K: tl.constexpr,  # one flattened (tap, reduced block) loop, for the pipeliner
    L1_SCRATCH: tl.constexpr,  # FLAT_K only: the loop's scratch copies allocate in L1 (_conv_step)
    APPLY_RELU: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    PAD: tl.constexpr = KSIZE // 2
    dtype = x_ptr.dtype.element_ty
    off = PAD * W + PAD
    halo_len = BLOCK_M + 2 * off
    # the launcher pads R to a multiple of BLOCK_R; telling the compiler makes scratch rows 16-byte
    # aligned in every specialization, so the conv loop's scratch loads can become async copies
    R_PAD = tl.multiple_of(R_PAD, BLOCK_R)
    n_rk = tl.cdiv(R, BLOCK_RK)  # reduced-channel blocks the conv loop visits (R_PAD may have more)

    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    slot = scratch_ptr + pid.to(tl.int64) * halo_rows * R_PAD
    lanes = tl.arange(0, BLOCK_M)

    for item in range(pid, num_items, n_programs):
        # the programs sharing a tile are adjacent, so they read its input from L2 together
        tile = item // n_split
        split = item - tile * n_split
        p0 = tile * BLOCK_M

        # 1. reduce over the tile's run of pixels into the scratch slot
        for q0 in range(0, halo_rows, BLOCK_HALO):
            offs_q = q0 + tl.arange(0, BLOCK_HALO)
            pix = p0 - off + offs_q
            inside = (offs_q < halo_len) & (pix >= 0) & (pix < M)
            pix = tl.where(inside, pix, 0)
            x_rows = ((pix // (H * W)).to(tl.int64) * sx_n + ((pix // W) % H).to(tl.int64) * sx_h
                      + (pix % W).to(tl.int64) * sx_w)
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
                    acc_r = tl.maximum(acc_r, 0.0, propagate_nan=tl.PropagateNan.ALL)
                acc_r = tl.where(inside[:, None] & r_mask[None, :], acc_r, 0.0)
                # stored as the k x k dot will read it: TF32-rounded where that dot is TF32
                tl.store(slot + offs_q[:, None] * R_PAD + offs_r[None, :],
                         round_tf32(acc_r, INPUT_PRECISION).to(dtype))
        # the conv below reads rows other threads of this program wrote
        tl.debug_barrier()

        # 2. k x k conv from the scratch slot. Output-channel blocks split, split + n_split, ...;
        # a unit-step loop: with a runtime step ptxas spilled the FMA variants
        p = p0 + lanes
        m_mask = p < M
        n_idx = p // (H * W)
        h_idx = (p // W) % H
        w_idx = p % W
        out_rows = n_idx.to(tl.int64) * so_n + h_idx.to(tl.int64) * so_h + w_idx.to(tl.int64) * so_w
        for j in range(0, tl.cdiv(tl.cdiv(C_OUT, BLOCK_N) - split, n_split)):
            offs_n = (split + j * n_split) * BLOCK_N + tl.arange(0, BLOCK_N)
            n_mask = offs_n < C_OUT
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            if FLAT_K:  # one loop over (tap, reduced-channel block) for the pipeliner
                for it in range(0, KSIZE * KSIZE * n_rk):
                    acc = _conv_step(acc, slot, wk_ptr, it // n_rk, (it % n_rk) * BLOCK_RK, lanes, h_idx, w_idx,
                                     m_mask, offs_n, n_mask, H, W, R, R_PAD, C_OUT, KSIZE, BLOCK_RK, L1_SCRATCH,
                                     INPUT_PRECISION)
            else:  # num_stages 1: nested loops, the tap's mask and rows computed once per tap
                for tap in range(0, KSIZE * KSIZE):
                    kh = tap // KSIZE
                    kw = tap % KSIZE
                    hh = h_idx + kh - PAD
                    ww = w_idx + kw - PAD
                    tap_ok = m_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                    rows = lanes + kh * W + kw
                    for r0 in range(0, R_PAD, BLOCK_RK):
                        offs_r = r0 + tl.arange(0, BLOCK_RK)
                        a = tl.load(slot + rows[:, None] * R_PAD + offs_r[None, :], mask=tap_ok[:, None], other=0.0)
                        b = tl.load(wk_ptr + (tap * R + offs_r[:, None]) * C_OUT + offs_n[None, :],
                                    mask=(offs_r[:, None] < R) & n_mask[None, :], other=0.0)
                        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
            acc += tl.load(bk_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
            if APPLY_RELU:
                acc = tl.maximum(acc, 0.0, propagate_nan=tl.PropagateNan.ALL)  # ReLU(NaN) = NaN, as F.relu
            out_ptrs = out_ptr + out_rows[:, None] + ((out_c0 + offs_n).to(tl.int64) * so_c)[None, :]
            tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])
        # the next item overwrites the slot: every read of this one must be done
        tl.debug_barrier()


# The aligned channels_last specialization of this kernel (kernels/alignment.py), which a config's
# aligned tiles run: these runtime ints take any int32 value, the channel strides are 1 and every
# other int is divisible by 16 (R_PAD and halo_rows always are: multiples of BLOCK_R and
# BLOCK_HALO). compile-check compiles the aligned tiles as this one specialization.
ALIGNED_FREE_INTS: tuple[str, ...] = ("M", "H", "W", "R", "num_items", "n_split")
ALIGNED_UNIT_INTS: tuple[str, ...] = ("sx_c", "so_c")


def aligned_channels_last(ints: dict[str, int], tensors: tuple[torch.Tensor, ...]) -> bool:
    """Whether a launch with these runtime ints (the kernel's names) and tensors is the aligned
    channels_last specialization (kernels/alignment.py) with ALIGNED_FREE_INTS free."""
    return alignment.aligned_channels_last(ints, tensors, ALIGNED_FREE_INTS, ALIGNED_UNIT_INTS)


def reduce_conv_grid(num_tiles: int, c_out: int, config: ReduceConvConfig, sms: int | None) -> tuple[int, int]:
    """(programs, n_split) of a launch: ``grid_for_sms`` on the device's ``sms`` SMs (gpu.sm_count)
    with ``config.programs_per_sm`` program slots each; sms None (the interpreter):
    gpu.INTERPRETER_SMS with one slot each."""
    return grid_for_sms(num_tiles, c_out, config, gpu.sms_for_tiles(sms), 1 if sms is None else config.programs_per_sm)


def grid_for_sms(num_tiles: int, c_out: int, config: ReduceConvConfig, sms: int,
                 programs_per_sm: int) -> tuple[int, int]:
    """(programs, n_split) on ``sms`` SMs of ``programs_per_sm`` program slots (reduce_conv_grid's
    rule; also what the `plan` cost model launches).

    The persistent grid has min(work items, slots) programs. When the tiles are fewer than the
    SMs, up to cdiv(c_out, BLOCK_N) programs share a tile (n_split), each taking every n_split-th
    block of output channels: the largest split whose items still fit one wave, at most one item
    per SM (n_split = sms // tiles), so none once the tiles alone fill half the SMs. A split makes
    an item cheaper (its share of the k x k conv) but never cheaper than the tile's whole
    reduction, which every split recomputes; where tiles x n_split exceeds the SMs, some SM runs
    two items, which takes longer than one unsplit tile. So 5a/5b's 98 tiles of 128 pixels at
    batch 256 run unsplit on 132 SMs (modelled by `plan`, not measured). A config without
    ``split_columns`` never splits; one with ``split_fill="slots"``, a tuning candidate, splits
    until every program slot has an item (`tune` on a GPU times it, ``mma-slots``).
    """
    n_split = 1
    if config.split_columns:
        col_blocks = triton.cdiv(c_out, config.BLOCK_N)
        if config.split_fill == "sms":
            n_split = max(1, min(col_blocks, sms // num_tiles))
        else:
            n_split = min(col_blocks, triton.cdiv(sms * programs_per_sm, num_tiles))
    return min(num_tiles * n_split, sms * programs_per_sm), n_split


def launch_constexprs(config: ReduceConvConfig, ksize: int, relu: bool, input_precision: str) -> dict:
    """The kernel's constexpr arguments for a launch (also what compile-check compiles)."""
    return dict(KSIZE=ksize, BLOCK_M=config.BLOCK_M, BLOCK_HALO=config.BLOCK_HALO, BLOCK_R=config.BLOCK_R,
                BLOCK_RK=config.BLOCK_RK, BLOCK_N=config.BLOCK_N, BLOCK_K=config.BLOCK_K,
                FLAT_K=config.num_stages > 1, L1_SCRATCH=config.l1_scratch, APPLY_RELU=relu,
                INPUT_PRECISION=input_precision)


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
) -> int:
    """Write act(conv_kxk(act(conv_1x1(x)))) into ``out[:, out_c0 : out_c0 + C_out]``; return the
    number of kernel launches made (1, or 0 when ``x`` has no pixels).

    x: [N, C_in, H, W] (any strides); w_reduce: [C_in, R] contiguous; b_reduce: [R] float32;
    w_conv: [ksize*ksize, R, C_out] contiguous (tap = kh*ksize + kw); b_conv: [C_out] float32;
    out: [N, C_total, H, W] (any strides). Weights are in x's dtype. With input_precision "tf32",
    x and both weights must hold TF32 values already (kernels/tf32.py, round_tf32_tensor: the
    forward rounds them once per block); the kernel rounds the reduced activations itself.
    Where x and out are channels_last with 16-aligned channel counts, offsets and strides
    (aligned_channels_last), the launch runs the config's aligned tiles for the GPU (configs.tiles_for).
    """
    n, c_in, h, w = x.shape
    m = n * h * w
    if m == 0:
        return 0
    r = w_reduce.shape[1]
    c_out = w_conv.shape[2]
    sms = gpu.sm_count(x.device)  # looked up once: a device query per launch is host time
    if config.aligned:
        # the runtime ints that do not depend on the tiles, by the kernel's names
        ints = dict(M=m, H=h, W=w, C_IN=c_in, R=r, C_OUT=c_out,
                    **dict(zip(("sx_n", "sx_c", "sx_h", "sx_w"), x.stride())),
                    **dict(zip(("so_n", "so_c", "so_h", "so_w"), out.stride())), out_c0=out_c0)
        if aligned_channels_last(ints, (x, w_reduce, b_reduce, w_conv, b_conv, out)):
            config = tiles_for(config, m, c_out, gpu.sm_arch(x.device), gpu.sms_for_tiles(sms))
    num_tiles = triton.cdiv(m, config.BLOCK_M)
    programs, n_split = reduce_conv_grid(num_tiles, c_out, config, sms)
    r_pad = triton.cdiv(r, config.BLOCK_R) * config.BLOCK_R
    halo_rows = config.halo_rows(ksize, w)
    scratch = torch.empty((programs, halo_rows, r_pad), dtype=x.dtype, device=x.device)
    _reduce_conv_kernel[(programs,)](
        x, w_reduce, b_reduce, w_conv, b_conv, out, scratch,
        m, h, w, c_in, r, c_out, r_pad,
        *x.stride(), *out.stride(),
        out_c0, halo_rows, num_tiles * n_split, n_split,
        **launch_constexprs(config, ksize, relu, input_precision),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return 1
