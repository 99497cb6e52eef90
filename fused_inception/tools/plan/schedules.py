"""Declarative schedules of the fused kernels for the latency model (``latency``).

Two schedules per kernel:

* "today": the kernels as of commit d2e917c, their tile constants frozen here (the configs of
  that commit), since kernels/configs.py moves on. ``reduce_conv``: persistent grid of 2
  programs x 4 warps per SM, nothing pipelined (num_stages 1); per tile the reduce runs in
  BLOCK_HALO = 32-row chunks, re-reading the input tile once per BLOCK_R = 32 reduced channels,
  and the k x k conv re-reads the scratch once per BLOCK_N = 32 output channels and tap.
  ``pointwise_pool``: one program per (64-pixel, 64-channel) tile; the runtime tap loop and the
  A tile built in registers keep the pipeliner out (its num_stages 3 does nothing), and a pool
  tile's nine tap loads run one after another.
* "pipelined": the redesign of issue 12, with the tile constants kernels/configs.py holds at run
  time (so the model follows the configs as they change; for reduce_conv the sm_90 aligned tiles
  where a channels_last launch takes them, ``fused.modelled_tiles``). ``reduce_conv``: per work item (a tile
  and one of its column splits, ``plan.reduce_conv_grid``) the reduce runs BLOCK_HALO-row chunks x
  BLOCK_R reduced channels, each a K loop over input channels pipelined num_stages - 1 deep (the
  input is re-read once per BLOCK_R block); the k x k conv is one flattened loop over (tap,
  BLOCK_RK block) per BLOCK_N block of output channels, pipelined the same way. Residency: the
  config's programs per SM, or fewer where the estimated registers or shared memory do not fit.
  ``pointwise_pool``: two launches of one kernel (kernels/pointwise_pool.py, IS_POOL), each a
  1-D grid of (pixel tile, column tile) programs, column tiles fastest. Branch 1: BLOCK_M x
  BLOCK_N tiles (the config's sm_90 aligned tiles where a launch takes them,
  ``fused.modelled_tiles``), a plain GEMM whose K loop (BLOCK_K a step) is pipelined
  num_stages - 1 deep.
  Pool projection: BLOCK_M x BLOCK_NP tiles (BLOCK_NP_WIDE where an aligned launch takes them,
  ``fused.modelled_pool_tiles``), K step BLOCK_KP, the nine 3x3 taps unrolled and
  all loaded before the max; modelled as the channels_last launches compile (compile-check, sm_90):
  the weight tile and the nine tap tiles are async copies, so the loop is pipelined num_stages - 1
  deep; the tap copies are 8-byte cp.async.ca in the compiled PTX (LDGSTS.E.64, allocating in L1),
  so per step the run of BLOCK_M + 2(W + 1) pixels the taps cover comes from L2 and the other tap
  loads hit L1 (``_pool_pixels``, as for today's plain loads). Residency and the loop's instruction
  count (the latency model's issue bound): from the registers, shared memory and SASS loop that
  compile-check reported for the shipped config (``COMPILED_POINTWISE``, ``resident_compiled``),
  else the estimate of ``resident_programs`` and no issue bound. A pointwise config without BLOCK_NP is the kernel of commit d2e917c, not
  redesigned: its "pipelined" schedule is today's single launch with that config's tiles.

All three GPUs of the model are GH100 (sm_90): a dot of >= 64 rows runs as wgmma, a smaller one
as mma.sync; fp32 IEEE dots run on CUDA cores ("fma").
"""

from __future__ import annotations

from dataclasses import dataclass

from fused_inception.kernels.configs import dot_class
from fused_inception.kernels.tuned_configs import pick_pointwise_config, pick_reduce_conv_config
from fused_inception.tools.plan.fused import (config_label, modelled_dot_precision, modelled_pool_tiles,
                                              modelled_tiles, pointwise_pool_launches, reduce_conv_grid,
                                              reduce_conv_launch)
from fused_inception.tools.plan.launches import dtype_bytes
from fused_inception.tools.plan.shapes import cdiv
from fused_inception.tools.plan.latency import Loop, Schedule, Work
from fused_inception.spec import InceptionSpec

LABELS = ("today", "pipelined")


@dataclass(frozen=True)
class TodayReduceConvConfig:
    """The reduce -> k x k tile constants of commit d2e917c (its ReduceConvConfig's fields)."""

    BLOCK_M: int
    BLOCK_HALO: int
    BLOCK_R: int
    BLOCK_N: int
    BLOCK_K: int
    num_warps: int = 4
    num_stages: int = 1

    def halo_rows(self, k: int, width: int) -> int:
        """Rows of reduced tensor one tile computes: its pixel run, rounded up to BLOCK_HALO."""
        return cdiv(self.BLOCK_M + 2 * ((k // 2) * width + k // 2), self.BLOCK_HALO) * self.BLOCK_HALO


@dataclass(frozen=True)
class TodayPointwiseConfig:
    """The pointwise/pool tile constants of commit d2e917c (its num_stages 3 pipelined nothing)."""

    BLOCK_M: int
    BLOCK_N: int
    BLOCK_K: int
    num_warps: int = 4
    num_stages: int = 3


# The configs of commit d2e917c, per dot class (kernels/configs.py of that commit).
TODAY_REDUCE_CONV = {
    "mma": TodayReduceConvConfig(BLOCK_M=64, BLOCK_HALO=32, BLOCK_R=32, BLOCK_N=32, BLOCK_K=32),
    "tf32": TodayReduceConvConfig(BLOCK_M=64, BLOCK_HALO=32, BLOCK_R=16, BLOCK_N=32, BLOCK_K=16),
    "fma": TodayReduceConvConfig(BLOCK_M=32, BLOCK_HALO=32, BLOCK_R=16, BLOCK_N=16, BLOCK_K=16),
}
TODAY_POINTWISE = {
    "mma": TodayPointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32),
    "tf32": TodayPointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32),
    "fma": TodayPointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16),
}
TODAY_PROGRAMS_PER_SM = 2  # reduce_conv's persistent grid at d2e917c

# (registers per thread, shared memory bytes per program, SASS instructions per warp and K step of
# the loop) of the redesigned pointwise/pool kernel as compiled, per (config label: the name, with
# " aligned" for its aligned branch-1 tiles; element bytes; pool tile width, 0 for branch 1):
# compile-check's registers, shared memory and loop_instructions for the bf16 channels_last
# launches of torchvision's 3b (branch 1 with either tiles, pool) and 4e (128-wide pool) at batch
# 256 on sm_90, triton COMPILED_WITH (tests/tools/test_compile_check.py
# compiles them again and compares; benchmarks/NOTES.md, "The pool launch"). "np64" is the
# default as commit ac3b22c compiled it (taps masked, no wide tiles). Other configs and dtypes fall
# back to ``resident_programs``' estimate and no issue bound.
COMPILED_WITH = "3.8.0"
COMPILED_POINTWISE = {("default", 2, 0): (64, 17408, 89), ("default aligned", 2, 0): (250, 50176, 107),
                      ("default", 2, 64): (100, 25600, 215), ("default", 2, 128): (128, 29696, 217),
                      ("np64", 2, 0): (64, 17408, 89), ("np64", 2, 64): (98, 25600, 478)}
# The same figures for the code the H200 measured (commit ac3b22c: pool taps masked to -inf, no wide
# tiles; its default is "np64" now), for the configs its tuner timed: each config compiled as 3b's
# launches would be with it (the default's specialization, n_col_tiles as the config's tiles give
# it, taps masked), by compile-check with triton COMPILED_WITH (the run itself had triton 3.6,
# whose counts may differ a little; tests/tools/test_compile_check.py compiles them again). The
# calibration (measured.py) models these.
COMPILED_POINTWISE_AC3B22C = {("np64", 2, 0): (64, 17408, 89), ("np64", 2, 64): (98, 25600, 478),
                              ("np32", 2, 0): (71, 25600, 90), ("np32", 2, 32): (76, 43008, 553),
                              ("n32", 2, 0): (48, 19456, 77), ("n32", 2, 32): (76, 43008, 553),
                              ("s4", 2, 0): (71, 33792, 90), ("s4", 2, 32): (85, 62464, 607),
                              ("n32s4", 2, 0): (48, 25600, 77), ("n32s4", 2, 32): (85, 62464, 607)}

# Hopper SM limits for the residency estimate
_REGS_PER_SM = 65536
_SMEM_PER_SM = 228 * 1024
# L1 and shared memory share 256 KB per SM: what the resident programs' shared memory leaves is L1
_L1_AND_SMEM_PER_SM = 256 * 1024
_L1_LINE = 128  # bytes
_WARPS_PER_SM = 64
_BASE_REGS = 64  # per thread besides the fp32 accumulator: addresses, operand fragments, loop state


def _per_step(total: int, steps: int) -> int:
    """Bytes per loop step of ``total`` bytes spread over ``steps`` (masked rows and columns,
    past C_in, R or C_out, are not loaded, so a step's tile bytes would overcount)."""
    return total // steps


def _mma(cls: str, rows: int) -> str:
    if cls == "fma":
        return "fma"
    return "wgmma" if rows >= 64 else "mma_sync"


def resident_compiled(warps: int, regs: int, smem_bytes: int) -> int:
    """Programs one SM holds from compiled registers per thread and shared memory per program,
    by the rule compile-check applies on sm_90: registers allocated per warp in units of 256 out
    of 64K, 1 KiB of shared memory reserved per CTA, at most 64 warps and 32 CTAs."""
    regs_per_warp = cdiv(32 * regs, 256) * 256
    return max(1, min(_REGS_PER_SM // regs_per_warp // warps, _SMEM_PER_SM // (smem_bytes + 1024),
                      _WARPS_PER_SM // warps, 32))


def resident_programs(warps: int, acc_elems: int, smem_bytes: int) -> int:
    """Programs one SM holds: the least of the register file (64 + fp32 accumulator registers per
    thread, an estimate; compile-check gives the real count), shared memory and 64 warps."""
    threads = 32 * warps
    regs = _BASE_REGS + cdiv(acc_elems, threads)
    return max(1, min(_REGS_PER_SM // (regs * threads), _SMEM_PER_SM // max(1, smem_bytes), _WARPS_PER_SM // warps))


# --------------------------------------------------------------------------------------------
# reduce -> k x k


def reduce_conv_today(block: str, branch: str, cin: int, r: int, c: int, k: int, batch: int, h: int, w: int,
                      dtype: str, sms: int, tf32: bool = True) -> Schedule:
    """The reduce -> k x k launch as commit d2e917c runs it (see the module docstring)."""
    cls = dot_class(dtype, modelled_dot_precision(dtype, tf32))
    cfg = TODAY_REDUCE_CONV[cls]
    e = dtype_bytes(dtype)
    launch = reduce_conv_launch(block, branch, cin, r, c, k, batch, h, w, dtype, cfg, sms, tf32=tf32)
    tiles = cdiv(batch * h * w, cfg.BLOCK_M)
    halo_rows = cfg.halo_rows(k, w)
    r_pad = cdiv(r, cfg.BLOCK_R) * cfg.BLOCK_R
    r_blocks = r_pad // cfg.BLOCK_R
    bm, bh, br, bn, bk = cfg.BLOCK_M, cfg.BLOCK_HALO, cfg.BLOCK_R, cfg.BLOCK_N, cfg.BLOCK_K
    trips = cdiv(cin, bk)
    n_blocks = cdiv(c, bn)
    # plain loads, cached in L1: a chunk's input tile comes from L2 for its first reduced-channel
    # block and from L1 for the others (averaged per step)
    x_step = _per_step(bh * cin * e, trips)
    reduce = Loop("reduce", (halo_rows // bh) * r_blocks, trips, 1, _mma(cls, bh), 2 * bh * bk * br,
                  x_step // r_blocks + _per_step(cin * r * e, trips * r_blocks),
                  l1_bytes=x_step - x_step // r_blocks, store_bytes=bh * br * e)
    # the scratch slot comes from L2 once per tile (the stores write through), its other
    # n_blocks x k*k passes from L1; the weights from L2 every time
    conv_instances = n_blocks * k * k
    slot_step = _per_step(halo_rows * r_pad * e, conv_instances * r_blocks)
    conv = Loop("kxk", conv_instances, r_blocks, 1, _mma(cls, bm), 2 * bm * br * bn,
                slot_step + _per_step(r * c * e, n_blocks * r_blocks), l1_bytes=max(0, bm * br * e - slot_step))
    programs = max(1, min(tiles, TODAY_PROGRAMS_PER_SM * sms))
    return Schedule("today", launch.name, (Work("tile", tiles, (reduce, conv)),), programs, TODAY_PROGRAMS_PER_SM,
                    cfg.num_warps, launch.hbm_bytes,
                    detail=f"{tiles} tiles, {programs} programs x {cfg.num_warps} warps, 2/SM, 1 stage")


def reduce_conv_pipelined(block: str, branch: str, cin: int, r: int, c: int, k: int, batch: int, h: int, w: int,
                          dtype: str, sms: int, tf32: bool = True, cfg: object | None = None) -> Schedule:
    """The reduce -> k x k launch as the redesign runs it (see the module docstring), with the
    tile constants of ``cfg`` (default: the config kernels/configs.py picks now), or its aligned
    tiles where the launch takes them (``fused.modelled_tiles``)."""
    precision = modelled_dot_precision(dtype, tf32)
    cls = dot_class(dtype, precision)
    named = cfg or pick_reduce_conv_config(dtype, precision)
    cfg = modelled_tiles(named, batch * h * w, c, sms)
    e = dtype_bytes(dtype)
    launch = reduce_conv_launch(block, branch, cin, r, c, k, batch, h, w, dtype, named, sms, tf32=tf32)
    bm, bh, br, bn, bk = cfg.BLOCK_M, cfg.BLOCK_HALO, cfg.BLOCK_R, cfg.BLOCK_N, cfg.BLOCK_K
    brk = getattr(cfg, "BLOCK_RK", br)
    depth = max(1, cfg.num_stages - 1)
    tiles = cdiv(batch * h * w, bm)
    programs, n_split = reduce_conv_grid(tiles, c, cfg, sms)
    r_pad = cdiv(r, br) * br
    smem = cfg.num_stages * e * max(bm * brk + brk * bn, bh * bk + bk * br)
    fit = resident_programs(cfg.num_warps, max(bm * bn, bh * br), smem)
    resident = min(fit, getattr(cfg, "programs_per_sm", fit))
    trips, r_blocks, n_rk, n_blocks = cdiv(cin, bk), r_pad // br, cdiv(r, brk), cdiv(c, bn)
    reduce = Loop("reduce", (cfg.halo_rows(k, w) // bh) * r_blocks, trips, depth, _mma(cls, bh), 2 * bh * bk * br,
                  _per_step(bh * cin * e, trips) + _per_step(cin * r * e, trips * r_blocks), store_bytes=bh * br * e)
    # the k x k loop's scratch rows: BLOCK_M x BLOCK_RK per step, from L2 (16-byte copies bypass
    # L1); with l1_scratch (8-byte copies that allocate in L1), from L2 once per item (the rows
    # its taps read, BLOCK_M + 2 * (PAD * W + PAD), x the channels its steps visit) and from L1
    # for every other tap and column block, where the resident programs' footprints (in whole
    # 128-byte lines per row) and shared memory fit the SM's L1 and shared memory together
    pad = k // 2
    tap_rows = bm + 2 * (pad * w + pad)
    footprint = tap_rows * n_rk * brk * e
    footprint_lines = tap_rows * cdiv(n_rk * brk * e, _L1_LINE) * _L1_LINE
    l1_hits = (getattr(cfg, "l1_scratch", False)
               and resident * (footprint_lines + smem) <= _L1_AND_SMEM_PER_SM)
    # split j of a tile takes the output-channel blocks j, j + n_split, ...: some splits one more
    per_split, extra = divmod(n_blocks, n_split)
    works = []
    for blocks, splits in ((per_split + 1, extra), (per_split, n_split - extra)):
        if splits:
            steps = blocks * k * k * n_rk
            scratch_l2 = _per_step(footprint, steps) if l1_hits else bm * brk * e
            conv = Loop("kxk", blocks, k * k * n_rk, depth, _mma(cls, bm), 2 * bm * brk * bn,
                        scratch_l2 + _per_step(r * c * e, n_rk * n_blocks),
                        l1_bytes=max(0, bm * brk * e - scratch_l2))
            works.append(Work(f"item, {blocks} column blocks", tiles * splits, (reduce, conv) if blocks else (reduce,)))
    return Schedule("pipelined", launch.name, tuple(works), programs, resident, cfg.num_warps, launch.hbm_bytes,
                    detail=(f"{tiles} tiles x {n_split} split, {programs} programs x {cfg.num_warps} warps, "
                            f"{resident}/SM resident, {cfg.num_stages} stages; BLOCK_M/HALO/R/RK/N/K "
                            f"{bm}/{bh}/{br}/{brk}/{bn}/{bk} ({config_label(named, cfg)})"
                            + ("; scratch re-reads from L1" if l1_hits else "")))


# --------------------------------------------------------------------------------------------
# pointwise / pool


def _pool_pixels(block_m: int, width: int) -> tuple[int, int]:
    """(pixels from L2, pixel loads hitting L1) of a pool tile's nine tap loads per K step: the
    taps of BLOCK_M consecutive pixels cover the run [p0 - W - 1, p0 + BLOCK_M + W + 1); each
    pixel of it comes from L2 once, the other tap loads re-read lines the program has just
    loaded (plain loads, cached in L1)."""
    unique = min(9 * block_m, block_m + 2 * (width + 1))
    return unique, 9 * block_m - unique


def _pointwise_unpipelined(label: str, block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                           cfg: object, tf32: bool) -> Schedule:
    """Commit d2e917c's pointwise/pool kernel with the tiles of ``cfg``: unpipelined K loops, the
    nine pool taps one after another, BLOCK_N-wide pool tiles."""
    cls = dot_class(dtype, modelled_dot_precision(dtype, tf32))
    e = dtype_bytes(dtype)
    launch = pointwise_pool_launches(block, spec, batch, h, w, dtype, cfg, tf32=tf32)[0]
    m_tiles = cdiv(batch * h * w, cfg.BLOCK_M)
    trips = cdiv(spec.in_channels, cfg.BLOCK_K)
    bm, bn, bk = cfg.BLOCK_M, cfg.BLOCK_N, cfg.BLOCK_K
    cin, n1, npool = spec.in_channels, cdiv(spec.ch1x1, bn), cdiv(spec.pool_proj, bn)
    flops = 2 * bm * bk * bn
    gemm = Loop("gemm", 1, trips, 1, _mma(cls, bm), flops,
                _per_step(bm * cin * e, trips) + _per_step(cin * spec.ch1x1 * e, trips * n1))
    l2_px, l1_px = _pool_pixels(bm, w)
    pool = Loop("pool", 1, trips, 1, _mma(cls, bm), flops,
                _per_step(l2_px * cin * e, trips) + _per_step(cin * spec.pool_proj * e, trips * npool),
                l1_bytes=_per_step(l1_px * cin * e, trips), serial=9)
    works = (Work("branch1", m_tiles * n1, (gemm,)), Work("pool", m_tiles * npool, (pool,)))
    resident = resident_programs(cfg.num_warps, bm * bn, cfg.num_stages * (bm * bk + bk * bn) * e)
    units = sum(wk.count for wk in works)
    return Schedule(label, launch.name, works, units, resident, cfg.num_warps, launch.hbm_bytes,
                    detail=(f"{units} programs x {cfg.num_warps} warps, {resident}/SM, BLOCK_M/N/K {bm}/{bn}/{bk}, "
                            f"unpipelined, serial pool taps"))


def pointwise_today(block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                    tf32: bool = True) -> Schedule:
    """The pointwise/pool launch as commit d2e917c runs it (see the module docstring)."""
    cfg = TODAY_POINTWISE[dot_class(dtype, modelled_dot_precision(dtype, tf32))]
    return _pointwise_unpipelined("today", block, spec, batch, h, w, dtype, cfg, tf32)


def pointwise_pipelined(block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                        tf32: bool = True, cfg: object | None = None,
                        compiled: dict | None = None, sms: int = 132) -> list[Schedule]:
    """The pointwise/pool launches as the redesign runs them (see the module docstring): two
    schedules, branch 1 then the pool projection, with the tile constants of ``cfg`` (default: the
    config kernels/configs.py picks now; branch 1 its aligned tiles where a launch on ``sms`` SMs
    takes them) and the compiled figures of ``compiled`` (default
    COMPILED_POINTWISE, the code now). A config without BLOCK_NP is commit d2e917c's kernel: one
    schedule, today's, with its tiles."""
    compiled_figures = COMPILED_POINTWISE if compiled is None else compiled
    precision = modelled_dot_precision(dtype, tf32)
    cls = dot_class(dtype, precision)
    cfg = cfg or pick_pointwise_config(dtype, precision)
    if not hasattr(cfg, "BLOCK_NP"):
        return [_pointwise_unpipelined("pipelined", block, spec, batch, h, w, dtype, cfg, tf32)]
    e = dtype_bytes(dtype)
    branch1, pool = pointwise_pool_launches(block, spec, batch, h, w, dtype, cfg, tf32=tf32, sms=sms)
    cin = spec.in_channels
    out = []
    block_np, _ = modelled_pool_tiles(cfg, spec.pool_proj)
    b1_tiles = modelled_tiles(cfg, batch * h * w, spec.ch1x1, sms)
    for launch, is_pool, tiles, c, bn, bk in (
            (branch1, False, b1_tiles, spec.ch1x1, b1_tiles.BLOCK_N, b1_tiles.BLOCK_K),
            (pool, True, cfg, spec.pool_proj, block_np, cfg.BLOCK_KP)):
        bm, stages, warps = tiles.BLOCK_M, tiles.num_stages, tiles.num_warps
        depth = max(1, stages - 1)
        m_tiles = cdiv(batch * h * w, bm)
        trips, n_tiles = cdiv(cin, bk), cdiv(c, bn)
        w_step = _per_step(cin * c * e, trips * n_tiles)
        if is_pool:
            # nine async tap copies per step, cp.async.ca: the taps' pixel run from L2, the rest from L1
            l2_px, l1_px = _pool_pixels(bm, w)
            x_step, l1_step = _per_step(l2_px * cin * e, trips), _per_step(l1_px * cin * e, trips)
            a_smem = 9 * bm * bk * e
        else:
            x_step, l1_step, a_smem = _per_step(bm * cin * e, trips), 0, bm * bk * e
        figures = compiled_figures.get((config_label(cfg, tiles), e, bn if is_pool else 0))
        loop = Loop("pool" if is_pool else "gemm", 1, trips, depth, _mma(cls, bm), 2 * bm * bk * bn, x_step + w_step,
                    l1_bytes=l1_step, instructions=figures[2] if figures else 0)
        if figures:
            resident, source = resident_compiled(warps, *figures[:2]), "compiled"
        else:
            resident, source = resident_programs(warps, bm * bn, stages * (a_smem + bk * bn * e)), "estimated"
        units = m_tiles * n_tiles
        out.append(Schedule("pipelined", launch.name, (Work("pool" if is_pool else "branch1", units, (loop,)),),
                            units, resident, warps, launch.hbm_bytes,
                            detail=(f"{units} programs x {warps} warps, {resident}/SM ({source}), {stages} stages, "
                                    f"BLOCK_M/N/K {bm}/{bn}/{bk} ({config_label(cfg, tiles)})")))
    return out


def block_schedules(label: str, block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                    sms: int, tf32: bool = True, pointwise_cfg: object | None = None,
                    pointwise_compiled: dict | None = None, reduce_conv_cfg: object | None = None) -> list[Schedule]:
    """The launches of one fused Inception block under schedule ``label``: "today" three (commit
    d2e917c: one pointwise/pool launch, two reduce -> k x k), "pipelined" four (branch 1, pool
    projection, two reduce -> k x k; ``pointwise_cfg``, ``pointwise_compiled``: the pointwise
    config and compiled figures, ``reduce_conv_cfg`` the reduce -> k x k config, default the
    configs kernels/configs.py picks now and the code now)."""
    if label not in LABELS:
        raise ValueError(f"unknown schedule {label!r}; expected one of {LABELS}")
    s = spec
    if label == "today":
        return [pointwise_today(block, s, batch, h, w, dtype, tf32),
                reduce_conv_today(block, "branch2", s.in_channels, s.ch3x3red, s.ch3x3, s.k3, batch, h, w, dtype,
                                  sms, tf32),
                reduce_conv_today(block, "branch3", s.in_channels, s.ch5x5red, s.ch5x5, s.k5, batch, h, w, dtype,
                                  sms, tf32)]
    return [*pointwise_pipelined(block, s, batch, h, w, dtype, tf32, pointwise_cfg, pointwise_compiled, sms),
            reduce_conv_pipelined(block, "branch2", s.in_channels, s.ch3x3red, s.ch3x3, s.k3, batch, h, w, dtype,
                                  sms, tf32, reduce_conv_cfg),
            reduce_conv_pipelined(block, "branch3", s.in_channels, s.ch5x5red, s.ch5x5, s.k5, batch, h, w, dtype,
                                  sms, tf32, reduce_conv_cfg)]


__all__ = [
    "COMPILED_POINTWISE",
    "COMPILED_POINTWISE_AC3B22C",
    "COMPILED_WITH",
    "LABELS",
    "TODAY_POINTWISE",
    "TODAY_REDUCE_CONV",
    "block_schedules",
    "pointwise_pipelined",
    "pointwise_today",
    "reduce_conv_pipelined",
    "reduce_conv_today",
    "resident_compiled",
    "resident_programs",
]
