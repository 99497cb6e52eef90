"""Launch configurations of the fused Inception kernels, and how one is picked for a shape.

Two kernels run one Inception block (three launches):

* ``pointwise_pool`` (one launch): the 1x1 branch and the max-pool -> 1x1 projection, an implicit
  GEMM over pixels (M = N*H*W) x output channels, K = input channels.
* ``reduce_conv`` (one launch per reduce -> k x k branch): a persistent program per tile of
  consecutive pixels computes the 1x1 reduction over the tile plus its halo into a small
  per-program scratch, then the k x k conv from that scratch.

Each (kernel, dtype, dot precision) launches its default config, unless the GPU's tuned file
(``kernels/tuned/``, read by ``tuned_configs.py``, written by ``python -m fused_inception tune``)
picks one of its tuning candidates (``CANDIDATES``). The list is deliberately small: every entry
is compiled ahead of time for sm_80 and sm_90 by ``python -m fused_inception compile-check`` and
run by the interpreter tests.
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


# Every entry compiles for sm_80 and sm_90 with no spill, generically (any shape) and as GoogLeNet's
# blocks launch it (python -m fused_inception compile-check; what spilled is in benchmarks/NOTES.md).
# Names other than the defaults are tuning candidates (CANDIDATES): a GPU's tuned file
# (kernels/tuned/) may pick one of them, nothing else. No entry uses 8 warps: DESIGN.md section 5
# records silent miscompiles of conv templates with num_warps >= 8.
POINTWISE_CONFIGS: dict[str, PointwiseConfig] = {
    "default": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3),
    # fp32 IEEE dots are FMAs with operands in registers: a shorter K step
    "fma": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, num_warps=4, num_stages=3),
    # tuning candidates
    "n32": PointwiseConfig(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, num_warps=4, num_stages=3),
    "s4": PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=4),
    "n32s4": PointwiseConfig(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, num_warps=4, num_stages=4),
    "fma-n32": PointwiseConfig(BLOCK_M=64, BLOCK_N=32, BLOCK_K=16, num_warps=4, num_stages=3),
    "fma-m32": PointwiseConfig(BLOCK_M=32, BLOCK_N=64, BLOCK_K=16, num_warps=4, num_stages=3),
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
    # tuning candidates: a taller halo chunk means fewer, larger reduce dots; a narrower reduced
    # channel step, fewer registers per dot
    "mma-h64": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=64, BLOCK_R=32, BLOCK_N=32, BLOCK_K=32,
                                num_warps=4, num_stages=1),
    "mma-r16": ReduceConvConfig(BLOCK_M=64, BLOCK_HALO=32, BLOCK_R=16, BLOCK_N=32, BLOCK_K=32,
                                num_warps=4, num_stages=1),
}

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")

# the dot precisions fused_inception.ops.dot_precision can pass: TF32 only for float32
INPUT_PRECISIONS: dict[str, tuple[str, ...]] = {
    "float32": ("ieee", "tf32"),
    "float16": ("ieee",),
    "bfloat16": ("ieee",),
}

KERNEL_NAMES: tuple[str, ...] = ("pointwise_pool", "reduce_conv")
_TABLES = {"pointwise_pool": POINTWISE_CONFIGS, "reduce_conv": REDUCE_CONV_CONFIGS}

# (kernel, dot class) -> config names a tuner may choose from, the default first
CANDIDATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pointwise_pool", "mma"): ("default", "n32", "s4", "n32s4"),
    ("pointwise_pool", "tf32"): ("default", "n32"),
    ("pointwise_pool", "fma"): ("fma", "fma-n32", "fma-m32"),
    ("reduce_conv", "mma"): ("mma", "mma-h64", "mma-r16"),
    # every other BLOCK_M, BLOCK_N, BLOCK_K or stage count tried spilled in some launched
    # specialization (benchmarks/NOTES.md)
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


def _pick(kernel: str, dtype_name: str, input_precision: str, gpu: str | None):
    name = candidate_names(kernel, dtype_name, input_precision)[0]
    if gpu is not None:
        table = tuned_table(gpu)
        if table is not None:
            name = table.choices.get((kernel, dtype_name, input_precision), name)
    return config_by_name(kernel, name)


def pick_pointwise_config(dtype_name: str, input_precision: str, gpu: str | None = None) -> PointwiseConfig:
    """The pointwise/pool config for a dtype ("float32", "float16", "bfloat16") and dot precision
    ("ieee" or "tf32"): the tuned choice for ``gpu`` (a device name, as
    ``torch.cuda.get_device_name`` gives it) when a tuned file for that GPU has one, else the
    default."""
    return _pick("pointwise_pool", dtype_name, input_precision, gpu)


def pick_reduce_conv_config(dtype_name: str, input_precision: str, gpu: str | None = None) -> ReduceConvConfig:
    """The reduce -> k x k config for a dtype and dot precision: tuned for ``gpu`` when a tuned
    file has it, else the default (see pick_pointwise_config)."""
    return _pick("reduce_conv", dtype_name, input_precision, gpu)


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


# last: tuned_configs validates its files against the tables above
from .tuned_configs import tuned_table  # noqa: E402
