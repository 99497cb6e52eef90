"""Launch configurations of the fused Inception kernels: the tables, as frozen data.

Two kernels run one Inception block (four launches):

* ``pointwise_pool`` (two launches of one kernel, IS_POOL constexpr): the 1x1 branch, then the
  max-pool -> 1x1 projection, each an implicit GEMM over pixels (M = N*H*W) x output channels,
  K = input channels.
* ``reduce_conv`` (one launch per reduce -> k x k branch): persistent programs walk tiles of
  consecutive pixels (several programs share a tile's output channels when tiles are few); each
  computes the 1x1 reduction over its tile plus halo into a small per-program scratch, then the
  k x k conv from that scratch.

Each (kernel, dtype, dot precision) launches its default config, unless the GPU's tuned file
(``kernels/tuned/``, written by ``python -m fused_inception tune``) picks one of its tuning
candidates (``CANDIDATES``); ``tuned_configs.py`` reads those files and holds the pickers
(``pick_pointwise_config``, ``pick_reduce_conv_config``). This module imports nothing of the
package, so that the files can be validated against its tables. The list is deliberately small: every entry
is compiled ahead of time for sm_80 and sm_90 by ``python -m fused_inception compile-check`` and
run by the interpreter tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def sm_generation(arch: int) -> int:
    """The GPU generation of an SM architecture (8 for sm_80-sm_89, 9 for sm_90): what a config's
    aligned tiles are chosen by."""
    return arch // 10


def _check_aligned(config: PointwiseConfig | ReduceConvConfig) -> None:
    """Raise unless ``config.aligned`` lists one entry per SM generation, in ascending order, and
    its entries have no aligned tiles of their own."""
    generations = [sm_generation(arch) for arch, _ in config.aligned]
    if generations != sorted(set(generations)):
        raise ValueError(f"aligned tiles must be listed once per SM generation, in ascending order: "
                         f"{[arch for arch, _ in config.aligned]}")
    if any(tiles.aligned for _, tiles in config.aligned):
        raise ValueError("aligned tiles cannot have aligned tiles of their own")


def _aligned_tiles(config: PointwiseConfig | ReduceConvConfig,
                   arch: int) -> PointwiseConfig | ReduceConvConfig | None:
    """The entry of ``config.aligned`` for an SM ``arch`` GPU (80 for sm_80, 86 for sm_86 ...):
    that of its generation (sm_generation); None when there is none."""
    for entry_arch, tiles in config.aligned:
        if sm_generation(entry_arch) == sm_generation(arch):
            return tiles
    return None


def tiles_for(config: PointwiseConfig | ReduceConvConfig, m: int, c_out: int, arch: int,
              sms: int) -> PointwiseConfig | ReduceConvConfig:
    """The tiles an aligned launch (the kernel's aligned_channels_last) over ``m`` pixels and
    ``c_out`` output channels runs on ``sms`` SMs of architecture ``arch``: the config's aligned
    tiles for that arch (``config.aligned_tiles``) where those tiles still give every SM a work
    item (pixel tiles x output-channel blocks >= sms: at batch 1 the larger tiles would leave SMs
    idle that the smaller ones fill), else ``config`` itself. Unaligned launches run ``config``.
    Both kernels' rule (a reduce_conv launch, a pointwise_pool branch-1 launch; pool launches never
    take aligned tiles) and what the `plan` cost model launches."""
    tiles = config.aligned_tiles(arch)
    if tiles is None or -(-m // tiles.BLOCK_M) * -(-c_out // tiles.BLOCK_N) < sms:
        return config
    return tiles


# the PointwiseConfig fields only pool code uses (a branch-1 launch passes them as constexprs, which
# its code ignores): aligned branch-1 tiles keep the config's own
_POOL_FIELDS = ("BLOCK_NP", "BLOCK_KP", "BLOCK_NP_WIDE", "clamp_taps")


@dataclass(frozen=True)
class PointwiseConfig:
    """Tile sizes of the pointwise/pool kernel: branch-1 tiles of BLOCK_M pixels x BLOCK_N
    channels with K step BLOCK_K, pool tiles of BLOCK_M pixels x BLOCK_NP channels with K step
    BLOCK_KP (see pointwise_pool.py). ``clamp_taps``: aligned channels_last pool launches
    (pointwise_pool.aligned_channels_last) clamp their taps into the image instead of masking
    them to -inf (half the loop's instructions). ``BLOCK_NP_WIDE`` (0: none; needs clamp_taps):
    the pool tile width of such a launch whose pool projection is wider than BLOCK_NP and fits
    one wide tile (pointwise_pool.wide_pool_tiles): each pool column tile loads and maxes the
    nine taps again, so one wide tile pools once where BLOCK_NP tiles pool twice.

    ``aligned``: larger branch-1 tiles for aligned channels_last branch-1 launches
    (pointwise_pool.aligned_channels_last), per GPU generation, as ReduceConvConfig.aligned: ((SM
    arch, config), ...) in ascending order, one per generation; a branch-1 launch takes the entry's
    BLOCK_M, BLOCK_N, BLOCK_K, num_warps and num_stages where its tiles still give every SM a
    program (tiles_for); pool launches never do. Their own ``aligned`` is empty, and so that an
    entry says what runs, its pool fields (BLOCK_NP, BLOCK_KP, BLOCK_NP_WIDE, clamp_taps, which
    branch-1 code does not use) must be the config's own."""

    BLOCK_M: int
    BLOCK_N: int
    BLOCK_K: int
    BLOCK_NP: int = 32
    BLOCK_KP: int = 16
    num_warps: int = 4
    num_stages: int = 3
    BLOCK_NP_WIDE: int = 0
    clamp_taps: bool = True
    aligned: tuple[tuple[int, "PointwiseConfig"], ...] = ()

    def __post_init__(self):
        if self.BLOCK_NP_WIDE and self.BLOCK_NP_WIDE <= self.BLOCK_NP:
            raise ValueError(f"BLOCK_NP_WIDE ({self.BLOCK_NP_WIDE}) must be 0 or wider than BLOCK_NP ({self.BLOCK_NP})")
        if self.BLOCK_NP_WIDE and not self.clamp_taps:
            raise ValueError("wide pool tiles (BLOCK_NP_WIDE) are compiled for clamped taps only (clamp_taps)")
        _check_aligned(self)
        for arch, tiles in self.aligned:
            changed = [f for f in _POOL_FIELDS if getattr(tiles, f) != getattr(self, f)]
            if changed:
                raise ValueError(f"the aligned branch-1 tiles of sm_{arch} change pool fields {changed}: pool "
                                 f"launches run the config's own, so an aligned entry must keep them")

    def aligned_tiles(self, arch: int) -> "PointwiseConfig | None":
        """The aligned branch-1 tiles an SM ``arch`` GPU takes (None: none for its generation)."""
        return _aligned_tiles(self, arch)


@dataclass(frozen=True)
class ReduceConvConfig:
    """Tile sizes of the fused reduce -> k x k kernel.

    BLOCK_M consecutive output pixels (flattened n, h, w) per tile. The reduction over the tile's
    run of BLOCK_M + 2*(PAD*W + PAD) pixels runs in chunks of BLOCK_HALO pixels x BLOCK_R reduced
    channels (the scratch pads R to a multiple of BLOCK_R), K step BLOCK_K over input channels; the
    k x k conv produces BLOCK_N output channels at a time, K step BLOCK_RK reduced channels per tap
    (BLOCK_R must be a multiple of BLOCK_RK). ``programs_per_sm``: the persistent grid's programs
    per SM on a GPU; ``split_columns``: whether programs may share a tile's output channels when
    tiles are few; ``split_fill``: what that split fills, "sms" (at most one work item per SM:
    the largest split that fits one wave) or "slots" (every program slot); each split recomputes
    the tile's reduction. See reduce_conv.grid_for_sms. ``l1_scratch`` (pipelined configs only):
    the k x k loop copies its scratch rows 8 bytes at a time, so they allocate in L1 and the nine
    taps' overlapping rows (and the other column blocks' passes) can hit there, where 16-byte
    copies bypass L1 and every pass reads L2 (kernels/l1_runs.py).

    ``aligned``: larger tiles for aligned channels_last launches (kernels/alignment.py), per GPU
    generation: ((SM arch, config), ...) in ascending order, one per generation, e.g. ((80, A),
    (90, B)): sm_80-sm_89 GPUs take A, sm_90 ones B, any other generation (older, or Blackwell's
    sm_100/sm_120, whose code compile-check does not see) neither. A launch takes them where they
    still give every SM a work item (tiles_for). Their own ``aligned`` is empty.
    """

    BLOCK_M: int
    BLOCK_HALO: int
    BLOCK_R: int
    BLOCK_N: int
    BLOCK_K: int
    BLOCK_RK: int
    num_warps: int = 4
    num_stages: int = 3
    programs_per_sm: int = 4
    split_columns: bool = True
    split_fill: str = "sms"
    l1_scratch: bool = False
    aligned: tuple[tuple[int, "ReduceConvConfig"], ...] = ()

    def __post_init__(self):
        if self.split_fill not in ("sms", "slots"):
            raise ValueError(f"split_fill must be 'sms' or 'slots', got {self.split_fill!r}")
        if self.l1_scratch and self.num_stages < 2:
            raise ValueError("l1_scratch shapes the pipelined k x k loop's async copies: it needs num_stages >= 2")
        if self.BLOCK_R % self.BLOCK_RK:
            raise ValueError(f"BLOCK_R ({self.BLOCK_R}) must be a multiple of BLOCK_RK ({self.BLOCK_RK})")
        _check_aligned(self)

    def aligned_tiles(self, arch: int) -> "ReduceConvConfig | None":
        """The aligned tiles an SM ``arch`` GPU takes (None: none for its generation)."""
        return _aligned_tiles(self, arch)

    def halo_rows(self, k: int, width: int) -> int:
        """Rows of reduced tensor one tile computes: its pixel run, rounded up to BLOCK_HALO."""
        pad = k // 2
        run = self.BLOCK_M + 2 * (pad * width + pad)
        return -(-run // self.BLOCK_HALO) * self.BLOCK_HALO


# Every entry compiles for sm_80 and sm_90 with no spill, generically (any shape) and as GoogLeNet's
# blocks launch it (python -m fused_inception compile-check; what spilled is in benchmarks/NOTES.md).
# Names other than the defaults are tuning candidates (CANDIDATES): a GPU's tuned file
# (kernels/tuned/) may pick one of them, nothing else. No entry uses 8 warps: flattened (kh, kw, c)
# K loops in conv templates gave silent wrong results with num_warps >= 8 (pytorch issue 173068),
# and the interpreter tests cannot see a GPU miscompile.
_POINTWISE_DEFAULT = PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, BLOCK_NP=64, BLOCK_KP=16, num_warps=4,
                                     num_stages=2, BLOCK_NP_WIDE=128)
POINTWISE_CONFIGS: dict[str, PointwiseConfig] = {
    # branch-1 tiles 64 x 64 (128 columns spilled in generic and NCHW variants), pool tiles
    # 64 columns wide (the nine tap tiles are copied from L2 once per pool column tile: half the
    # tap traffic of 32 where pool_proj >= 64, 4a-5b; half the MMA idle at 3a's 32) with a K step
    # of 16 (32 spilled in the generic pool variants: nine tap tiles in flight). 2 stages: at 3 the
    # 64-wide pool tiles spilled 8 B (bf16 channels_last, 4e-5b, sm_80); one step of nine tap
    # tiles in flight per program is ~20 KB, 4 programs per SM keep ~80 KB of L2 reads in flight.
    # Aligned channels_last launches clamp their pool taps (478 -> 215 loop instructions, sm_90)
    # and, with pool_proj > 64 (4e-5b: 128), run 128-wide pool tiles and pool once, not twice:
    # measured on an H200 (bf16, batch 256), halving the pool tile width from 64 to 32 (np32, also
    # 3 stages) took the two pointwise launches of 3b/4d/5b from 0.350/0.195/0.159 to
    # 0.611/0.296/0.246 ms (do_bench medians). 128-wide pool tiles compile spill-free there (bf16
    # sm_90: 128 registers, 4 programs per SM; sm_80: 168, 3 programs, against 5 for 64-wide
    # tiles, a possible A100 cost not measured); NCHW pool variants spilled 184-256 B at 128
    # Aligned channels_last branch-1 launches on sm_90 run 128 x 128 tiles, 3 stages: a plain GEMM
    # that reads its input once per 128 output channels instead of per 64 and each weight tile once
    # per 128 pixels (bf16/fp16: 250 registers, 49 KB of shared memory, 2 programs per SM, 0
    # spills, wgmma and async copies; sm_80 compiled them clean too, at 249 registers, but no model
    # covers an A100, so it keeps 64 x 64). Modelled on the H200: benchmarks/NOTES.md, "Branch-1 tiles".
    "default": replace(_POINTWISE_DEFAULT, aligned=((90, replace(_POINTWISE_DEFAULT, BLOCK_M=128, BLOCK_N=128,
                                                                 num_stages=3)),)),
    # the default without its aligned branch-1 tiles (64 x 64 branch-1 tiles in every launch): the
    # TF32 default (fp32 operand tiles take twice the shared memory and registers, and the cost
    # model was only fitted on bf16), and a fp16/bf16 tuning candidate, so that a GPU's tune times
    # the sm_90 branch-1 tiles alone (default against b64)
    "b64": _POINTWISE_DEFAULT,
    # fp32 IEEE dots are FMAs with operands in registers: 32-pixel tiles, a shorter K step, not
    # pipelined (BLOCK_M 64 spilled 4-8 B in launched pool variants on sm_80 at 1 or 2 stages,
    # 4-76 B in generic ones at 3)
    "fma": PointwiseConfig(BLOCK_M=32, BLOCK_N=64, BLOCK_K=16, BLOCK_NP=32, BLOCK_KP=16, num_warps=4, num_stages=1),
    # tuning candidates
    "n32": PointwiseConfig(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, BLOCK_NP=32, BLOCK_KP=16, num_warps=4, num_stages=3),
    "s4": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, BLOCK_NP=32, BLOCK_KP=16, num_warps=4, num_stages=4),
    "n32s4": PointwiseConfig(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, BLOCK_NP=32, BLOCK_KP=16, num_warps=4, num_stages=4),
    # the default as the first GPU run measured it (commit ac3b22c): no wide pool tiles, taps masked
    # to -inf in every launch, 64 x 64 branch-1 tiles everywhere. A GPU's tune times it against the
    # default and b64 (b64 against np64: clamped taps, and wide pool tiles where pool_proj > 64):
    # only compiled code, a model and a measured 64-vs-32 lead chose wide tiles, clamped taps and
    # 128 x 128 branch-1 tiles
    "np64": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, BLOCK_NP=64, BLOCK_KP=16, num_warps=4, num_stages=2,
                            clamp_taps=False),
    # pool tiles 32 wide: every MMA column used at pool_proj 32 (3a), twice the tap loads at >= 64
    "np32": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, BLOCK_NP=32, BLOCK_KP=16, num_warps=4, num_stages=3),
    "fma-n32": PointwiseConfig(BLOCK_M=32, BLOCK_N=32, BLOCK_K=16, BLOCK_NP=32, BLOCK_KP=16, num_warps=4, num_stages=1),
}

# "mma": half-precision tensor-core dots; "tf32": fp32 on tensor cores, whose fp32 operand tiles
# take twice the registers; "fma": fp32 IEEE dots, which triton lowers to FMAs with operands in
# registers. The tensor-core configs are pipelined (async copies on sm_80 and sm_90, wgmma on
# sm_90: 64-row dots in both phases); BLOCK_N 128 spilled in their generic variants, and
# programs_per_sm 3 is what the 64 x 64 tiles' channels_last launches keep resident (benchmarks/NOTES.md).
# The tensor-core default as the first GPU run measured it (commit ac3b22c): 64 x 64 tiles in every
# launch. "mma" keeps them for launches that are not aligned (kernels/alignment.py: NCHW, odd channel
# counts), where larger tiles spilled in the generic variants (928-3896 B at 128 x 64 or 128 x 128).
_MMA_64 = ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=64, BLOCK_R=64, BLOCK_N=64, BLOCK_K=32, BLOCK_RK=32,
                           num_warps=4, num_stages=3, programs_per_sm=3)
REDUCE_CONV_CONFIGS: dict[str, ReduceConvConfig] = {
    # Aligned channels_last launches (all of GoogLeNet's) take larger tiles: per 64 output pixels
    # the k x k weights are read half as often (BLOCK_M 128) and, on sm_90, each tap's reduced
    # operand once per 128 output channels instead of per 64 (BLOCK_N 128); the halo recompute
    # falls from 2x to 1.5x for k = 3 at W = 7-28 (3x to 2x for k = 5 at W = 28). sm_90: 128 x 128,
    # BLOCK_RK 16 (wgmma's K; 32 spilled 8-80 B), BLOCK_R 128, the reduce's input read once per
    # 128 reduced channels (fewer registers than BLOCK_R 64 there), and 3 stages with BLOCK_K 16
    # (two steps in flight: 3 stages with BLOCK_K 32 spilled 32 B; 2 stages left one step in flight,
    # and triton 3.6 spilled 4 B there). sm_80: 128 x 64, 3 stages; 128 x 128 spilled 36-232 B
    # there (mma.sync holds its operand fragments in registers). Both hold 2 programs x 4 warps per
    # SM (programs_per_sm 2: a persistent grid must not launch more programs than stay resident).
    "mma": replace(_MMA_64, aligned=(
        (80, ReduceConvConfig(BLOCK_M=128, BLOCK_HALO=64, BLOCK_R=64, BLOCK_N=64, BLOCK_K=32, BLOCK_RK=32,
                              num_warps=4, num_stages=3, programs_per_sm=2)),
        (90, ReduceConvConfig(BLOCK_M=128, BLOCK_HALO=64, BLOCK_R=128, BLOCK_N=128, BLOCK_K=16, BLOCK_RK=16,
                              num_warps=4, num_stages=3, programs_per_sm=2)))),
    # tuning candidate: the measured default, 64 x 64 tiles in every launch (a GPU's tune times the
    # aligned tiles against it: only compiled code and the cost model chose them)
    "mma-64": _MMA_64,
    # tuning candidate: on sm_90, aligned tiles whose k x k loop copies its scratch rows into L1
    # (l1_scratch), so a tile's nine taps and its column blocks can re-read them from L1 rather
    # than L2: 128 x 64 (128 x 128 spilled 48-52 B with the 8-byte copies). Everything else is
    # mma's: 8-byte copies spilled 48-64 B in sm_80's aligned tiles and 4-56 B in some of
    # GoogLeNet's batch-1 sm_80 launches of the 64 x 64 tiles (triton 3.6 and 3.8). Modelled on
    # the H200 with those re-reads hitting L1 (benchmarks/NOTES.md, "Scratch copies through
    # L1"); whether they do, only a GPU's tune (mma against mma-l1) tells
    "mma-l1": replace(_MMA_64, aligned=(
        (80, ReduceConvConfig(BLOCK_M=128, BLOCK_HALO=64, BLOCK_R=64, BLOCK_N=64, BLOCK_K=32, BLOCK_RK=32,
                              num_warps=4, num_stages=3, programs_per_sm=2)),
        (90, ReduceConvConfig(BLOCK_M=128, BLOCK_HALO=64, BLOCK_R=128, BLOCK_N=64, BLOCK_K=16, BLOCK_RK=16,
                              num_warps=4, num_stages=3, programs_per_sm=2, l1_scratch=True)))),
    # fp32 operands take twice the registers: 32 output channels, 2 stages, and no column split
    # (a runtime n_split spilled 8 B in batch-1 launches on sm_80)
    "tf32": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=64, BLOCK_R=32, BLOCK_N=32, BLOCK_K=16, BLOCK_RK=32,
                             num_warps=4, num_stages=2, programs_per_sm=3, split_columns=False),
    # FMA dots are not pipelined (num_stages 1: nested tap / reduced-channel loops, see
    # reduce_conv.py); their registers allow 4 programs per SM. No column split: with a runtime
    # n_split ptxas spilled 8-12 B in their batch-1 launches on sm_80
    "fma": ReduceConvConfig(BLOCK_M=32, BLOCK_HALO=32, BLOCK_R=16, BLOCK_N=16, BLOCK_K=16, BLOCK_RK=16,
                            num_warps=4, num_stages=1, programs_per_sm=4, split_columns=False),
    # tuning candidate: the same binaries with 2 programs per SM, all that NCHW launches keep
    # resident (their x loads are not vectorizable and take more registers)
    "mma-p2": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=64, BLOCK_R=64, BLOCK_N=64, BLOCK_K=32, BLOCK_RK=32,
                               num_warps=4, num_stages=3, programs_per_sm=2),
    # tuning candidate: the same binaries with the column split filling every program slot (the
    # rule before the split was limited to filling the SMs, which only the cost model chose: the
    # first GPU tune decides between them)
    "mma-slots": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=64, BLOCK_R=64, BLOCK_N=64, BLOCK_K=32, BLOCK_RK=32,
                                  num_warps=4, num_stages=3, programs_per_sm=3, split_fill="slots"),
}

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")

# the dot precisions fused_inception.forward.dot_precision can pass: TF32 only for float32
INPUT_PRECISIONS: dict[str, tuple[str, ...]] = {
    "float32": ("ieee", "tf32"),
    "float16": ("ieee",),
    "bfloat16": ("ieee",),
}

KERNEL_NAMES: tuple[str, ...] = ("pointwise_pool", "reduce_conv")
_TABLES = {"pointwise_pool": POINTWISE_CONFIGS, "reduce_conv": REDUCE_CONV_CONFIGS}

# (kernel, dot class) -> config names a tuner may choose from, the default first
CANDIDATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pointwise_pool", "mma"): ("default", "b64", "np64", "n32", "s4", "n32s4", "np32"),
    ("pointwise_pool", "tf32"): ("b64", "n32"),
    ("pointwise_pool", "fma"): ("fma", "fma-n32"),
    ("reduce_conv", "mma"): ("mma", "mma-64", "mma-l1", "mma-p2", "mma-slots"),
    # other tile sizes tried spilled in some generic or launched variant (benchmarks/NOTES.md)
    ("reduce_conv", "tf32"): ("tf32",),
    ("reduce_conv", "fma"): ("fma",),
}


def _check(dtype_name: str, input_precision: str) -> None:
    if dtype_name not in INPUT_PRECISIONS:
        raise ValueError(f"unsupported dtype {dtype_name!r}; expected one of {DTYPES}")
    if input_precision not in INPUT_PRECISIONS[dtype_name]:
        raise ValueError(f"input precision {input_precision!r} is not launched for {dtype_name}; "
                         f"expected one of {INPUT_PRECISIONS[dtype_name]}")


def dot_class(dtype_name: str, input_precision: str) -> str:
    """How the kernels' dots run for a dtype and dot precision: "mma" (fp16/bf16 tensor cores),
    "tf32" (fp32 on tensor cores) or "fma" (fp32 IEEE, lowered to FMAs)."""
    _check(dtype_name, input_precision)
    if dtype_name != "float32":
        return "mma"
    return "tf32" if input_precision == "tf32" else "fma"


def candidate_names(kernel: str, dtype_name: str, input_precision: str) -> tuple[str, ...]:
    """The configs a tuner may choose for a kernel, dtype and dot precision; the default first."""
    if kernel not in _TABLES:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNEL_NAMES}")
    return CANDIDATES[(kernel, dot_class(dtype_name, input_precision))]


def config_by_name(kernel: str, name: str):
    """A config of ``kernel`` ("pointwise_pool" / "reduce_conv") by its name in the tables above."""
    if kernel not in _TABLES:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNEL_NAMES}")
    table = _TABLES[kernel]
    if name not in table:
        raise ValueError(f"no {kernel} config named {name!r}; expected one of {sorted(table)}")
    return table[name]


def launchable_configs() -> list[tuple[str, str, str, object]]:
    """Every (kernel name, dtype, input precision, config) the library can launch: the default of
    each (kernel, dtype, precision) first, then the tuning candidates a tuned file may select.
    compile-check's list, derived from CANDIDATES so that it cannot drift from the pickers."""
    rows: list[tuple[str, str, str, object]] = []
    for dtype_name in DTYPES:
        for precision in INPUT_PRECISIONS[dtype_name]:
            for kernel in KERNEL_NAMES:
                for name in candidate_names(kernel, dtype_name, precision):
                    rows.append((kernel, dtype_name, precision, config_by_name(kernel, name)))
    return rows


def default_configs() -> list[tuple[str, str, str, object]]:
    """The (kernel, dtype, input precision, config) launched where no tuned file applies."""
    return [(k, d, p, config_by_name(k, candidate_names(k, d, p)[0]))
            for d in DTYPES for p in INPUT_PRECISIONS[d] for k in KERNEL_NAMES]


def config_name(config: object) -> str:
    """The shipped name of a config (its key in POINTWISE_CONFIGS or REDUCE_CONV_CONFIGS)."""
    table = POINTWISE_CONFIGS if isinstance(config, PointwiseConfig) else REDUCE_CONV_CONFIGS
    for name, cfg in table.items():
        if cfg == config:
            return name
    return "custom"
