"""Launch configurations of the fused Inception kernels, and how one is picked for a shape.

Two kernels run one Inception block (three launches):

* ``pointwise_pool`` (one launch): the 1x1 branch and the max-pool -> 1x1 projection, an implicit
  GEMM over pixels (M = N*H*W) x output channels, K = input channels.
* ``reduce_conv`` (one launch per reduce -> k x k branch): a persistent program per spatial tile
  computes the 1x1 reduction over the tile plus its halo into a small per-program scratch, then
  the k x k conv from that scratch.

The shipped list is deliberately small: every entry is compiled ahead of time for sm_80 and sm_90
by ``python -m fused_inception compile-check`` and run by the interpreter tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PointwiseConfig:
    """Tile sizes of the pointwise/pool GEMM: BLOCK_M pixels x BLOCK_N channels, K step BLOCK_K."""

    BLOCK_M: int
    BLOCK_N: int
    BLOCK_K: int
    num_warps: int = 4
    num_stages: int = 3

    def meta(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReduceConvConfig:
    """Tile sizes of the fused reduce -> k x k kernel.

    TILE_H x TILE_W output pixels per tile (padded to BLOCK_M = next pow2 of their product lanes);
    the reduction over the (TILE_H+k-1) x (TILE_W+k-1) halo runs in chunks of BLOCK_HALO pixels x
    BLOCK_R reduced channels, K step BLOCK_K over input channels; the k x k conv produces BLOCK_N
    output channels at a time.
    """

    TILE_H: int
    TILE_W: int
    BLOCK_HALO: int
    BLOCK_R: int
    BLOCK_N: int
    BLOCK_K: int
    num_warps: int = 4
    num_stages: int = 2

    @property
    def BLOCK_M(self) -> int:
        return _next_pow2(self.TILE_H * self.TILE_W)

    def halo_rows(self, k: int) -> int:
        """Rows of reduced tensor one tile computes (halo pixels rounded up to BLOCK_HALO)."""
        halo = (self.TILE_H + k - 1) * (self.TILE_W + k - 1)
        return -(-halo // self.BLOCK_HALO) * self.BLOCK_HALO

    def meta(self) -> dict:
        return asdict(self)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# Half-precision types move twice the channels per byte, so they take the larger K step.
POINTWISE_CONFIGS: dict[str, PointwiseConfig] = {
    "fp32": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3),
    "half": PointwiseConfig(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, num_warps=4, num_stages=3),
}

# 8x8 tiles fit GoogLeNet's 28/14/7 grids with the same 23% edge waste as 7x7 tiles, but keep
# BLOCK_M a full power of two; 16x8 halves the halo recompute on larger images.
REDUCE_CONV_CONFIGS: dict[str, ReduceConvConfig] = {
    "fp32": ReduceConvConfig(TILE_H=8, TILE_W=8, BLOCK_HALO=32, BLOCK_R=32, BLOCK_N=64, BLOCK_K=32,
                             num_warps=4, num_stages=2),
    "half": ReduceConvConfig(TILE_H=8, TILE_W=8, BLOCK_HALO=32, BLOCK_R=32, BLOCK_N=64, BLOCK_K=64,
                             num_warps=4, num_stages=2),
    "half_large": ReduceConvConfig(TILE_H=16, TILE_W=8, BLOCK_HALO=64, BLOCK_R=32, BLOCK_N=64,
                                   BLOCK_K=64, num_warps=4, num_stages=2),
}


def _dtype_class(dtype_name: str) -> str:
    if dtype_name in ("float32", "fp32"):
        return "fp32"
    if dtype_name in ("float16", "bfloat16", "fp16", "bf16"):
        return "half"
    raise ValueError(f"unsupported dtype {dtype_name!r}; expected float32, float16 or bfloat16")


def pick_pointwise_config(dtype_name: str) -> PointwiseConfig:
    """The pointwise/pool config for a dtype name ("float32", "float16", "bfloat16")."""
    return POINTWISE_CONFIGS[_dtype_class(dtype_name)]


def pick_reduce_conv_config(dtype_name: str, height: int, width: int) -> ReduceConvConfig:
    """The reduce -> k x k config for a dtype and image size (larger tiles on larger images)."""
    cls = _dtype_class(dtype_name)
    if cls == "half" and height >= 16 and width >= 8:
        return REDUCE_CONV_CONFIGS["half_large"]
    return REDUCE_CONV_CONFIGS[cls]


def shipped_configs() -> list[tuple[str, str, object]]:
    """Every (kernel name, config name, config) the library can launch: compile-check's list."""
    rows: list[tuple[str, str, object]] = []
    rows += [("pointwise_pool", name, cfg) for name, cfg in POINTWISE_CONFIGS.items()]
    rows += [("reduce_conv", name, cfg) for name, cfg in REDUCE_CONV_CONFIGS.items()]
    return rows
