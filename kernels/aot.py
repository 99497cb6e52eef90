"""What ahead-of-time compilation of every launchable kernel variant needs.

``python -m fused_inception compile-check`` compiles each variant the library can launch for
sm_80 and sm_90 without a GPU (``triton.compile(ASTSource(fn, signature, constexprs, attrs),
target=GPUTarget("cuda", arch, 32), options=...)``). This module knows the kernels: for a
:class:`LaunchVariant` (kernel, config, dtype, dot precision, k, ReLU, memory format) it gives the
signature, constexprs, attributes and compile options exactly as the ``launch_*`` helpers would
produce them, and :func:`launch_variants` enumerates every variant from
:func:`~.configs.launchable_configs` (the (dtype, precision) -> config pickers), so a newly
shipped config is checked without touching this file.

How a launch specializes (triton's JIT, mirrored here):

* pointers: dtype from the tensor (x, weights, out, scratch in the compute dtype; biases always
  float32), and 16-byte aligned (fresh torch allocations): ``tt.divisibility = 16``;
* ints: ``i32``; an int equal to 1 becomes a constexpr. The unit stride is the one that matters:
  NCHW input/output have ``sx_w == so_w == 1``, channels_last ``sx_c == so_c == 1``, so each
  variant is compiled for one memory format. Other ints are compiled without divisibility hints
  (the generic specialization: any channel count and image size);
* constexprs: the config's tile sizes, plus ``KSIZE`` (reduce_conv), ``APPLY_RELU``
  and ``INPUT_PRECISION``.

Pure: importing this module imports no kernel; only :func:`compile_spec` does (and it must run
with ``TRITON_INTERPRET`` unset, or the kernels are not ``JITFunction`` s).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .configs import PointwiseConfig, ReduceConvConfig, config_name, launchable_configs

_PTR_TYPE = {"float32": "*fp32", "float16": "*fp16", "bfloat16": "*bf16"}

# memory format -> the stride arguments equal to 1 (specialized to constexpr 1 by the JIT)
LAYOUTS: dict[str, tuple[str, ...]] = {
    "nhwc": ("sx_c", "so_c"),
    "nchw": ("sx_w", "so_w"),
}

# GoogLeNet's k x k sizes (paper: 3 and 5; torchvision: 3 and 3)
REDUCE_CONV_KSIZES: tuple[int, ...] = (3, 5)
# GoogLeNet launches APPLY_RELU=True; user blocks may launch False. The epilogue ReLU changed no
# register count when every variant was compiled both ways (sm_80/sm_90, triton 3.8), so False is
# compiled once per (config, k): first dtype and precision, channels_last.
RELU_FALSE_LAYOUT = "nhwc"



@dataclass(frozen=True)
class KernelSpec:
    """How one kernel is launched: where its JIT function lives and the roles of its arguments."""

    name: str
    module: str  # submodule of this package holding the @triton.jit function
    attr: str  # the @triton.jit function's name
    config_cls: type
    bias_ptrs: tuple[str, ...]  # float32 pointers; every other *_ptr arg is in the compute dtype
    uses_ksize: bool
    constexprs: Callable[[Any, "LaunchVariant"], dict[str, Any]] = field(repr=False)

    def jit_fn(self):
        """The kernel's @triton.jit object (a JITFunction unless TRITON_INTERPRET=1)."""
        mod = importlib.import_module(f"{__package__}.{self.module}")
        return getattr(mod, self.attr)

    def python_fn(self):
        """The undecorated Python function (its parameters and annotations)."""
        fn = self.jit_fn()
        return getattr(fn, "fn", fn)


def _pointwise_constexprs(cfg: PointwiseConfig, v: "LaunchVariant") -> dict[str, Any]:
    # as launch_pointwise_pool passes them
    return {
        "APPLY_RELU": v.relu,
        "INPUT_PRECISION": v.input_precision,
        "BLOCK_M": cfg.BLOCK_M,
        "BLOCK_N": cfg.BLOCK_N,
        "BLOCK_K": cfg.BLOCK_K,
    }


def _reduce_conv_constexprs(cfg: ReduceConvConfig, v: "LaunchVariant") -> dict[str, Any]:
    # as launch_reduce_conv passes them
    return {
        "KSIZE": v.ksize,
        "BLOCK_M": cfg.BLOCK_M,
        "BLOCK_HALO": cfg.BLOCK_HALO,
        "BLOCK_R": cfg.BLOCK_R,
        "BLOCK_N": cfg.BLOCK_N,
        "BLOCK_K": cfg.BLOCK_K,
        "APPLY_RELU": v.relu,
        "INPUT_PRECISION": v.input_precision,
    }


KERNELS: dict[str, KernelSpec] = {
    "pointwise_pool": KernelSpec(
        name="pointwise_pool", module="pointwise_pool", attr="_pointwise_pool_kernel",
        config_cls=PointwiseConfig, bias_ptrs=("b_ptr",), uses_ksize=False,
        constexprs=_pointwise_constexprs,
    ),
    "reduce_conv": KernelSpec(
        name="reduce_conv", module="reduce_conv", attr="_reduce_conv_kernel",
        config_cls=ReduceConvConfig, bias_ptrs=("br_ptr", "bk_ptr"), uses_ksize=True,
        constexprs=_reduce_conv_constexprs,
    ),
}


@dataclass(frozen=True)
class LaunchVariant:
    """One compiled specialization of a kernel: everything that changes the generated code."""

    kernel: str
    config_name: str
    config: Any  # PointwiseConfig | ReduceConvConfig
    dtype: str  # "float32", "float16", "bfloat16"
    input_precision: str  # "ieee" or "tf32"
    ksize: int | None  # reduce_conv only
    relu: bool = True
    layout: str = "nhwc"  # memory format of input and output: which stride is 1

    @property
    def spec(self) -> KernelSpec:
        return KERNELS[self.kernel]

    @property
    def expects_mma(self) -> bool:
        """Tensor cores unless fp32 in IEEE precision (which triton lowers to FMAs)."""
        return self.dtype != "float32" or self.input_precision != "ieee"

    def label(self) -> str:
        k = f" k={self.ksize}" if self.ksize is not None else ""
        return (f"{self.kernel}/{self.config_name} {self.dtype} {self.input_precision}{k} "
                f"relu={int(self.relu)} {self.layout}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["config"] = asdict(self.config)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LaunchVariant":
        d = dict(d)
        d["config"] = KERNELS[d["kernel"]].config_cls(**d["config"])
        return cls(**d)


def launch_variants(kernels: tuple[str, ...] | list[str] | None = None) -> list[LaunchVariant]:
    """Every (kernel, config, dtype, precision, k, relu, layout) the library can launch."""
    out: list[LaunchVariant] = []
    relu_off_done: set[tuple[str, str]] = set()
    for kernel, dtype_name, precision, cfg in launchable_configs():
        if kernels is not None and kernel not in kernels:
            continue
        if kernel not in KERNELS:
            raise KeyError(f"launchable kernel {kernel!r} has no entry in kernels/aot.py KERNELS")
        name = config_name(cfg)
        ksizes = REDUCE_CONV_KSIZES if KERNELS[kernel].uses_ksize else (None,)
        for k in ksizes:
            for layout in LAYOUTS:
                out.append(LaunchVariant(kernel, name, cfg, dtype_name, precision, k, True, layout))
            if (kernel, name, k) not in relu_off_done:
                relu_off_done.add((kernel, name, k))
                out.append(LaunchVariant(kernel, name, cfg, dtype_name, precision, k, False, RELU_FALSE_LAYOUT))
    return out


def signature(v: LaunchVariant) -> dict[str, str]:
    """ASTSource signature: arg name -> "*fp16" / "i32" / "constexpr", in parameter order."""
    spec = v.spec
    constexprs = constexpr_values(v)
    sig: dict[str, str] = {}
    for p in inspect.signature(spec.python_fn()).parameters.values():
        name = p.name
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*fp32" if name in spec.bias_ptrs else _PTR_TYPE[v.dtype]
        else:
            sig[name] = "i32"
    return sig


def constexpr_values(v: LaunchVariant) -> dict[str, Any]:
    """Every constexpr of the compiled variant: the kernel's tl.constexpr parameters and the
    unit strides of the memory format. Raises if they drift from the kernel's parameters."""
    spec = v.spec
    params = inspect.signature(spec.python_fn()).parameters
    declared = [n for n, p in params.items() if "constexpr" in str(p.annotation)]
    values = spec.constexprs(v.config, v)
    if set(declared) != set(values):
        raise ValueError(f"{spec.name}: kernel constexprs {sorted(declared)} != aot.py's {sorted(values)}")
    for stride in LAYOUTS[v.layout]:
        if stride not in params:
            raise ValueError(f"{spec.name}: no stride argument {stride!r}")
        values[stride] = 1
    return values


def attributes(v: LaunchVariant) -> dict[tuple[int, ...], list]:
    """ASTSource attrs: every pointer 16-byte aligned, as the JIT specializes torch tensors."""
    sig = signature(v)
    return {(i,): [["tt.divisibility", 16]] for i, (n, t) in enumerate(sig.items()) if t.startswith("*")}


def compile_options(v: LaunchVariant) -> dict[str, int]:
    return {"num_warps": v.config.num_warps, "num_stages": v.config.num_stages}


@dataclass(frozen=True)
class CompileSpec:
    fn: Any  # JITFunction
    signature: dict[str, str]
    constexprs: dict[str, Any]
    attrs: dict[tuple[int, ...], list]
    options: dict[str, int]


def compile_spec(v: LaunchVariant) -> CompileSpec:
    """Everything ``triton.compile(ASTSource(fn, signature, constexprs, attrs), options=...)``
    needs. The kernel must have been decorated with TRITON_INTERPRET unset."""
    from triton.runtime.jit import JITFunction

    fn = v.spec.jit_fn()
    if not isinstance(fn, JITFunction):
        raise RuntimeError(f"{v.spec.attr} is not a JITFunction (TRITON_INTERPRET=1?): cannot compile it")
    return CompileSpec(fn, signature(v), constexpr_values(v), attributes(v), compile_options(v))
