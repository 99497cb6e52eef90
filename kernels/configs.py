"""Launch configurations of the fused Inception kernels, and how one is picked for a shape.

Two kernels run one Inception block (three launches):

* ``pointwise_pool`` (one launch): the 1x1 branch and the max-pool -> 1x1 projection, an implicit
  GEMM over pixels (M = N*H*W) x output channels, K = input channels.
* ``reduce_conv`` (one launch per reduce -> k x k branch): a persistent program per tile of
  consecutive pixels computes the 1x1 reduction over the tile plus its halo into a small
  per-program scratch, then the k x k conv from that scratch.

The shipped list is deliberately small: every entry is compiled ahead of time for sm_80 and sm_90
by ``python -m fused_inception compile-check`` and run by the interpreter tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PointwiseConfig:
    """Tile sizes of the pointwise/pool GEMM: BLOCK_M pixels x BLOCK_N channels, K step BLOCK_K."""

    BLOCK_M: int
    BLOCK_N: int
    BLOCK_K: int
    num_warps: int = 4
    num_stages: int = 3


@dataclass(frozen=True)
class ReduceConvConfig:
    """Tile sizes of the fused reduce -> k x k kernel.

    BLOCK_M consecutive output pixels (flattened n, h, w) per tile; the reduction over the tile's
    run of BLOCK_M + 2*(PAD*W + PAD) pixels runs in chunks of BLOCK_HALO pixels x BLOCK_R reduced
    channels, K step BLOCK_K over input channels; the k x k conv produces BLOCK_N output channels
    at a time.
    """

    BLOCK_M: int
    BLOCK_HALO: int
    BLOCK_R: int
    BLOCK_N: int
    BLOCK_K: int
    num_warps: int = 4
    num_stages: int = 2

    def halo_rows(self, k: int, width: int) -> int:
        """Rows of reduced tensor one tile computes: its pixel run, rounded up to BLOCK_HALO."""
        pad = k // 2
        run = self.BLOCK_M + 2 * (pad * width + pad)
        return -(-run // self.BLOCK_HALO) * self.BLOCK_HALO


# Every entry compiles for sm_80 and sm_90 with no spill, both generically and as GoogLeNet's
# blocks launch it (python -m fused_inception compile-check; what spilled is in
# benchmarks/NOTES.md).
POINTWISE_CONFIGS: dict[str, PointwiseConfig] = {
    "default": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3),
    # fp32 IEEE dots are FMAs with operands in registers: a shorter K step
    "fma": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, num_warps=4, num_stages=3),
}

# "mma": half-precision tensor-core dots; "tf32": fp32 on tensor cores, whose fp32 operand tiles
# take twice the registers; "fma": fp32 IEEE dots, which triton lowers to FMAs with operands in
# registers.
REDUCE_CONV_CONFIGS: dict[str, ReduceConvConfig] = {
    "mma": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=32, BLOCK_R=32, BLOCK_N=32, BLOCK_K=32,
                            num_warps=4, num_stages=1),
    "tf32": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=32, BLOCK_R=16, BLOCK_N=32, BLOCK_K=16,
                             num_warps=4, num_stages=1),
    "fma": ReduceConvConfig(BLOCK_M=32, BLOCK_HALO=32, BLOCK_R=16, BLOCK_N=16, BLOCK_K=16,
                            num_warps=4, num_stages=1),
}

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")

# the dot precisions fused_inception.ops.dot_precision can pass: TF32 only for float32
INPUT_PRECISIONS: dict[str, tuple[str, ...]] = {
    "float32": ("ieee", "tf32"),
    "float16": ("ieee",),
    "bfloat16": ("ieee",),
}


def _check(dtype_name: str, input_precision: str) -> None:
    if dtype_name not in INPUT_PRECISIONS:
        raise ValueError(f"unsupported dtype {dtype_name!r}; expected one of {DTYPES}")
    if input_precision not in INPUT_PRECISIONS[dtype_name]:
        raise ValueError(f"input precision {input_precision!r} is not launched for {dtype_name}; "
                         f"expected one of {INPUT_PRECISIONS[dtype_name]}")


def pick_pointwise_config(dtype_name: str, input_precision: str) -> PointwiseConfig:
    """The pointwise/pool config for a dtype ("float32", "float16", "bfloat16") and dot precision."""
    _check(dtype_name, input_precision)
    fma = dtype_name == "float32" and input_precision == "ieee"
    return POINTWISE_CONFIGS["fma" if fma else "default"]


def pick_reduce_conv_config(dtype_name: str, input_precision: str) -> ReduceConvConfig:
    """The reduce -> k x k config for a dtype and dot precision ("ieee" or "tf32")."""
    _check(dtype_name, input_precision)
    if dtype_name == "float32":
        return REDUCE_CONV_CONFIGS["fma" if input_precision == "ieee" else "tf32"]
    return REDUCE_CONV_CONFIGS["mma"]


def launchable_configs() -> list[tuple[str, str, str, object]]:
    """Every (kernel name, dtype, input precision, config) the library can launch: compile-check's
    list, derived from the pickers so that it cannot drift from them."""
    rows: list[tuple[str, str, str, object]] = []
    for dtype_name in DTYPES:
        for precision in INPUT_PRECISIONS[dtype_name]:
            rows.append(("pointwise_pool", dtype_name, precision, pick_pointwise_config(dtype_name, precision)))
            rows.append(("reduce_conv", dtype_name, precision, pick_reduce_conv_config(dtype_name, precision)))
    return rows


def config_name(config: object) -> str:
    """The shipped name of a config (its key in POINTWISE_CONFIGS or REDUCE_CONV_CONFIGS)."""
    for table in (POINTWISE_CONFIGS, REDUCE_CONV_CONFIGS):
        for name, cfg in table.items():
            if cfg == config:
                return name
    return "custom"
