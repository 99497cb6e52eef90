"""What ahead-of-time compilation of every launchable kernel variant needs.

``python -m fused_inception compile-check`` compiles each variant the library can launch for
sm_80 and sm_90 without a GPU (``triton.compile(ASTSource(fn, signature, constexprs, attrs),
target=GPUTarget("cuda", arch, 32), options=...)``). This module knows the kernels: for a
:class:`LaunchVariant` (kernel, config, dtype, dot precision, k, ReLU, memory format) it gives the
signature, constexprs, attributes and compile options exactly as the ``launch_*`` helpers would
produce them, and :func:`launch_variants` enumerates every variant from
:func:`~.configs.launchable_configs` (each (dtype, precision)'s default and tuning candidates), so
a newly shipped config is checked without touching this file.

How a launch specializes (triton's JIT, mirrored here):

* pointers: dtype from the tensor (x, weights, out, scratch in the compute dtype; biases always
  float32), and 16-byte aligned (fresh torch allocations): ``tt.divisibility = 16``;
* ints: an int equal to 1 becomes a constexpr; any other int is ``i32`` (``i64``/``u64`` beyond
  that range) and gets ``tt.divisibility = 16`` when divisible by 16 (0 included), see
  :func:`jit_int_key`;
* floats (bn_relu_pool's ``eps``, :attr:`KernelSpec.float_args`): ``fp32``, never specialized;
* constexprs: the config's tile sizes, plus ``KSIZE`` (reduce_conv), ``IS_POOL`` and ``CLAMP_TAPS``
  (pointwise_pool), ``APPLY_RELU``
  and ``INPUT_PRECISION``; bn_relu_pool's are its pool window (:class:`PoolWindow`) and the kernel
  module's fixed tiles.

Two sets of variants are compiled:

* **generic** (:func:`launch_variants`, every default and tuning candidate config): only the
  memory format's unit strides are constexpr 1
  (NCHW input/output have ``sx_w == so_w == 1``, channels_last ``sx_c == so_c == 1``); every
  other int is ``i32`` without divisibility hints. A real launch specializes at least as much, so
  these cover any channel count, image size and batch. They are usually, not always, the worst
  case for registers: some configs spill only in a launched specialization (benchmarks/NOTES.md).
  Pool launches with clamped taps (aligned channels_last, ``pointwise_pool.aligned_channels_last``;
  maybe wide tiles) and a config's aligned tiles (each kernel's ``aligned_channels_last``;
  ``ReduceConvConfig.aligned``, and ``PointwiseConfig.aligned`` for branch 1) are compiled as that
  one specialization instead (``_int_keys``),
  the aligned tiles only for their SM generation (``LaunchVariant.compiled_for``).
* **launched** (:func:`googlenet_launch_variants`): the specializations GoogLeNet's nine blocks
  (paper and torchvision variants, NCHW and channels_last, batches :data:`GOOGLENET_BATCHES`, every
  launchable dtype/precision; the default configs and those of every checked-in tuned file)
  actually launch. Their runtime arguments are not re-derived here:
  ``fused_inception.forward._forward_triton`` and the ``launch_*`` helpers run on meta tensors with
  the jitted kernels replaced by recorders (:func:`record_googlenet_launches`, once per SM
  architecture of :data:`RECORD_ARCHS`, which pick the aligned tiles), and the recorded values are
  specialized as the JIT does (:func:`jit_int_key`); identical specializations are merged and
  remember which launches they serve (``LaunchVariant.launches``). The stem's bn_relu_pool
  launches (the BN + ReLU + max-pool epilogue of its conv units) are recorded the same way from
  the library's epilogue call (``fused_inception.stem.bn_relu_pool``) on the torchvision stem
  (:func:`record_stem_launches`).
  bn_relu_pool has no config to choose and no generic variant: its launched specializations are
  all it compiles, and it is not a tensor-core kernel (:attr:`KernelSpec.tensor_cores`), so only
  the rules on compiling, spills, registers and shared memory apply to it.

Pure: importing this module imports no kernel; :func:`compile_spec`, :func:`constexpr_values` (the
launchers' own constexpr builders) and the GoogLeNet recording
do (compile_spec must run with ``TRITON_INTERPRET`` unset, or the kernels are not
``JITFunction`` s; recording works either way, since the kernels are replaced while it runs).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator

import torch

from fused_inception import forward, stem
from fused_inception.dtypes import short_name
from fused_inception.kernels import bn_relu_pool, pointwise_pool, reduce_conv
from fused_inception.kernels import gpu as kernel_gpu
from fused_inception.kernels.configs import (DTYPES, PointwiseConfig, ReduceConvConfig, config_name,
                                             launchable_configs, sm_generation)
from fused_inception.kernels.tuned_configs import shipped_tables
from fused_inception.models.googlenet import GoogLeNet
from fused_inception.params import InceptionParams
from fused_inception.spec import GOOGLENET_BLOCKS, VARIANTS, googlenet_spec



def ptr_type(dtype: str | Any) -> str:
    """Triton's signature type of a pointer to a kernel dtype (full name or torch dtype):
    ``"float16"`` -> ``"*fp16"`` (Triton spells the element types as our short names)."""
    return "*" + short_name(dtype)

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
    module: str  # the fused_inception.kernels submodule holding the @triton.jit function
    attr: str  # the @triton.jit function's name
    config_cls: type
    bias_ptrs: tuple[str, ...]  # float32 pointers; every other *_ptr arg is in the compute dtype
    uses_ksize: bool
    # whether its dots run on tensor cores (except fp32 IEEE, lowered to FMAs): the rules on MMA
    # instructions and async copies (report.py) apply to its variants only if so
    tensor_cores: bool
    constexprs: Callable[[Any, "LaunchVariant"], dict[str, Any]] = field(repr=False)
    # the compile options a launch passes, from the variant's config
    options: Callable[[Any], dict[str, int]] = field(repr=False)
    # the unspecialized variants (ints free) a recorded launch may be of, to match its constexprs
    # and options against (launched_variant)
    launch_bases: Callable[["RecordedLaunch", dict[str, Any]], list["LaunchVariant"]] = field(repr=False)
    float_args: tuple[str, ...] = ()  # runtime float arguments: fp32, never specialized

    def jit_fn(self):
        """The kernel's @triton.jit object (a JITFunction unless TRITON_INTERPRET=1)."""
        mod = importlib.import_module(f"fused_inception.kernels.{self.module}")
        return getattr(mod, self.attr)

    def python_fn(self):
        """The undecorated Python function (its parameters and annotations)."""
        fn = self.jit_fn()
        return getattr(fn, "fn", fn)


def _pointwise_constexprs(cfg: PointwiseConfig, v: "LaunchVariant") -> dict[str, Any]:
    # the launcher's own builder, so the two cannot drift apart
    return pointwise_pool.launch_constexprs(cfg, bool(v.pool), v.relu, v.input_precision, v.clamped, v.wide_pool)


def _reduce_conv_constexprs(cfg: ReduceConvConfig, v: "LaunchVariant") -> dict[str, Any]:
    return reduce_conv.launch_constexprs(cfg, v.ksize, v.relu, v.input_precision)


def _config_options(cfg: PointwiseConfig | ReduceConvConfig) -> dict[str, int]:
    return {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


@dataclass(frozen=True)
class PoolWindow:
    """bn_relu_pool's "config": the max-pool window of its epilogue, what its launches compile
    differently besides dtype and layout (KERNEL x KERNEL taps, STRIDE, PAD; (1, 1, 0) without a
    pool). Its tiles and warps are the kernel module's constants, not chosen per launch."""

    kernel: int
    stride: int
    pad: int

    @property
    def name(self) -> str:
        """"pool3s2p0", or "nopool" for BN + ReLU alone."""
        return "nopool" if self.kernel == 1 else f"pool{self.kernel}s{self.stride}p{self.pad}"


def _bn_relu_pool_constexprs(w: PoolWindow, v: "LaunchVariant") -> dict[str, Any]:
    return bn_relu_pool.launch_constexprs(w.kernel, w.stride, w.pad)


def _bn_relu_pool_options(w: PoolWindow) -> dict[str, int]:
    # the launcher passes num_warps alone: the JIT and triton.compile both take triton's default
    # num_stages (the kernel has no loop to pipeline)
    return {"num_warps": bn_relu_pool.NUM_WARPS}


def _config_bases(rec: "RecordedLaunch", kwargs: dict[str, Any]) -> list["LaunchVariant"]:
    """The variants of every launchable config of the launch's (kernel, dtype, precision) in every
    mode of its layout (_modes) that has the launch's IS_POOL and, for aligned tiles, is the
    recorded arch's."""
    cfgs = [c for k, d, p, c in launchable_configs() if (k, d, p) == (rec.kernel, rec.dtype, rec.input_precision)]
    ksize = kwargs.get("KSIZE") if KERNELS[rec.kernel].uses_ksize else None
    return [LaunchVariant(rec.kernel, config_name(cfg), tiles, rec.dtype, rec.input_precision, ksize,
                          bool(kwargs["APPLY_RELU"]), rec.layout, pool, clamped, wide, arch)
            for cfg in cfgs for tiles, pool, clamped, wide, arch in _modes(rec.kernel, cfg, rec.layout)
            if pool is kwargs.get("IS_POOL") and (arch is None or cfg.aligned_tiles(rec.arch) == tiles)]


def _window_bases(rec: "RecordedLaunch", kwargs: dict[str, Any]) -> list["LaunchVariant"]:
    """The one bn_relu_pool variant of the launch's pool window (no dot: no input precision; the
    kernel always applies ReLU)."""
    window = PoolWindow(kwargs["KERNEL"], kwargs["STRIDE"], kwargs["PAD"])
    return [LaunchVariant(rec.kernel, window.name, window, rec.dtype, None, None, True, rec.layout)]


KERNELS: dict[str, KernelSpec] = {
    "pointwise_pool": KernelSpec(
        name="pointwise_pool", module="pointwise_pool", attr="_pointwise_pool_kernel",
        config_cls=PointwiseConfig, bias_ptrs=("b_ptr",), uses_ksize=False, tensor_cores=True,
        constexprs=_pointwise_constexprs, options=_config_options, launch_bases=_config_bases,
    ),
    "reduce_conv": KernelSpec(
        name="reduce_conv", module="reduce_conv", attr="_reduce_conv_kernel",
        config_cls=ReduceConvConfig, bias_ptrs=("br_ptr", "bk_ptr"), uses_ksize=True, tensor_cores=True,
        constexprs=_reduce_conv_constexprs, options=_config_options, launch_bases=_config_bases,
    ),
    # the stem's epilogue: every pointer (x, out, the BN's parameters and buffers) in the model's
    # dtype, as a model cast to it holds them
    "bn_relu_pool": KernelSpec(
        name="bn_relu_pool", module="bn_relu_pool", attr="_bn_relu_pool_kernel",
        config_cls=PoolWindow, bias_ptrs=(), uses_ksize=False, tensor_cores=False,
        constexprs=_bn_relu_pool_constexprs, options=_bn_relu_pool_options,
        launch_bases=_window_bases, float_args=("eps",),
    ),
}


@dataclass(frozen=True)
class LaunchVariant:
    """One compiled specialization of a kernel: everything that changes the generated code."""

    kernel: str
    config_name: str
    config: Any  # PointwiseConfig | ReduceConvConfig | PoolWindow
    dtype: str  # "float32", "float16", "bfloat16"
    input_precision: str | None  # "ieee" or "tf32"; None for a kernel without dots (bn_relu_pool)
    ksize: int | None  # reduce_conv only
    relu: bool = True
    layout: str = "nhwc"  # memory format of input and output: which stride is 1
    # pointwise_pool only (None for reduce_conv): its IS_POOL constexpr, which of its two
    # launches per block this is (False: branch 1, True: the pool projection)
    pool: bool | None = None
    # pool launches only: taps clamped into the image (CLAMP_TAPS: the aligned channels_last
    # specialization, pointwise_pool.aligned_channels_last), and with them BLOCK_NP_WIDE-wide tiles
    clamped: bool = False
    wide_pool: bool = False
    # not None when ``config`` is the named config's aligned tiles of the SM generation of
    # ``arch`` (ReduceConvConfig.aligned, or PointwiseConfig.aligned for branch 1: 80 for
    # sm_80-sm_89, 90 for sm_90), compiled as the kernel's aligned channels_last specialization
    # (its aligned_channels_last) and only for that generation
    arch: int | None = None
    # launched specializations: (int argument, jit_int_key) for every runtime int argument, in
    # parameter order; None for a generic variant (only the layout's unit strides specialized)
    ints: tuple[tuple[str, str], ...] | None = None
    # which GoogLeNet launches use this specialization ("paper/3a/N256/b3"); not part of its identity
    launches: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spec(self) -> KernelSpec:
        return KERNELS[self.kernel]

    @property
    def launched(self) -> bool:
        return self.ints is not None

    @property
    def aligned(self) -> bool:
        """A config's aligned tiles (``arch`` says whose)."""
        return self.arch is not None

    def compiled_for(self, arch: int) -> bool:
        """Whether an ``arch`` GPU runs this variant: every variant but aligned tiles, which only
        their SM generation runs (the config's aligned_tiles)."""
        return self.arch is None or sm_generation(self.arch) == sm_generation(arch)

    def ints_label(self) -> str:
        """The launched specialization in short: ints that are constexpr 1 and ints that are not
        divisible by 16 ("1:sx_c,so_c nd:H,W"); every other int has tt.divisibility 16."""
        if self.ints is None:
            return "generic"
        ones = [n for n, k in self.ints if k == "1"]
        nd = [n for n, k in self.ints if k != "1" and not k.endswith(":D")]
        wide = [f"{n}:{k.split(':')[0]}" for n, k in self.ints if k != "1" and not k.startswith("i32")]
        parts = [f"1:{','.join(ones)}" if ones else "", f"nd:{','.join(nd)}" if nd else "",
                 f"wide:{','.join(wide)}" if wide else ""]
        return " ".join(p for p in parts if p) or "all-D"

    @property
    def expects_mma(self) -> bool:
        """Tensor cores in a tensor-core kernel unless fp32 in IEEE precision (which triton lowers
        to FMAs); never in a kernel without dots."""
        return self.spec.tensor_cores and (self.dtype != "float32" or self.input_precision != "ieee")

    def label(self) -> str:
        precision = f" {self.input_precision}" if self.input_precision is not None else ""
        k = f" k={self.ksize}" if self.ksize is not None else ""
        k += {True: " pool", False: " branch1", None: ""}[self.pool]
        k += " wide" if self.wide_pool else " clamped" if self.clamped else ""
        k += f" aligned sm_{sm_generation(self.arch)}x" if self.aligned else ""
        spec = f" [{self.ints_label()}]" if self.launched else ""
        return (f"{self.kernel}/{self.config_name} {self.dtype}{precision}{k} "
                f"relu={int(self.relu)} {self.layout}{spec}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["config"] = asdict(self.config)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LaunchVariant":
        d = dict(d)
        fields = dict(d["config"])
        config_cls = KERNELS[d["kernel"]].config_cls
        if "aligned" in fields:  # (arch, tiles) pairs, the tiles as dicts
            fields["aligned"] = tuple((int(arch), config_cls(**{**tiles, "aligned": ()}))
                                      for arch, tiles in fields["aligned"])
        d["config"] = config_cls(**fields)
        if d.get("ints") is not None:
            d["ints"] = tuple((str(n), str(k)) for n, k in d["ints"])
        d["launches"] = tuple(d.get("launches") or ())
        return cls(**d)


def launch_variants(kernels: tuple[str, ...] | list[str] | None = None) -> list[LaunchVariant]:
    """Every (kernel, config, dtype, precision, k, relu, layout) the library can launch."""
    out: list[LaunchVariant] = []
    relu_off_done: set[tuple[str, str]] = set()
    for kernel, dtype_name, precision, cfg in launchable_configs():
        if kernels is not None and kernel not in kernels:
            continue
        if kernel not in KERNELS:
            raise KeyError(f"launchable kernel {kernel!r} has no entry in tools/compile_check/aot.py KERNELS")
        name = config_name(cfg)
        ksizes = REDUCE_CONV_KSIZES if KERNELS[kernel].uses_ksize else (None,)
        for k in ksizes:
            for layout in LAYOUTS:
                for tiles, pool, clamped, wide, arch in _modes(kernel, cfg, layout):
                    out.append(LaunchVariant(kernel, name, tiles, dtype_name, precision, k, True, layout, pool,
                                             clamped, wide, arch))
            if (kernel, name, k) not in relu_off_done:
                relu_off_done.add((kernel, name, k))
                for tiles, pool, clamped, wide, arch in _modes(kernel, cfg, RELU_FALSE_LAYOUT):
                    out.append(LaunchVariant(kernel, name, tiles, dtype_name, precision, k, False, RELU_FALSE_LAYOUT,
                                             pool, clamped, wide, arch))
    return out


def _modes(kernel: str, cfg: Any, layout: str) -> tuple[tuple[Any, bool | None, bool, bool, int | None], ...]:
    """The (tiles, IS_POOL, clamped, wide, aligned arch) of a config's launches in a layout.
    pointwise_pool launches twice per block (branch 1, then the pool projection); a channels_last
    branch-1 launch may be the aligned specialization with the config's aligned tiles of an arch
    (configs.tiles_for); a channels_last pool launch of a config with clamp_taps may be the
    aligned specialization (taps clamped), and that one may take the config's wide pool tiles
    (pointwise_pool.wide_pool_tiles). reduce_conv launches the config's own tiles, and a
    channels_last launch may be the aligned specialization with the config's aligned tiles of an
    arch (configs.tiles_for). ``tiles`` is the config the launch compiles with; ``aligned arch``
    None except for aligned tiles."""
    if kernel != "pointwise_pool":
        aligned = cfg.aligned if layout == "nhwc" else ()
        return ((cfg, None, False, False, None), *((tiles, None, False, False, arch) for arch, tiles in aligned))
    modes: list[tuple[Any, bool | None, bool, bool, int | None]] = [(cfg, False, False, False, None)]
    if layout == "nhwc":
        modes.extend((tiles, False, False, False, arch) for arch, tiles in cfg.aligned)
    modes.append((cfg, True, False, False, None))
    if layout == "nhwc" and cfg.clamp_taps:
        modes.append((cfg, True, True, False, None))
        if cfg.BLOCK_NP_WIDE:
            modes.append((cfg, True, True, True, None))
    return tuple(modes)


def jit_int_key(value: int) -> str:
    """How triton 3.8's JIT specializes a runtime int argument, as a key.

    Mirrors ``native_specialize_impl`` (triton/_C, called by the binder that
    ``triton.runtime.jit.create_function_from_signature`` builds) with ``specialize`` and
    ``align`` on, as for every parameter of these kernels (none is ``do_not_specialize``): the
    int 1 becomes a constexpr ("1"); otherwise the type is i32 in [-2**31, 2**31), i64 in
    [-2**63, 2**63), u64 up to 2**64, with ":D" (``tt.divisibility = 16``) when ``value % 16 == 0``
    (0 and negative multiples included, via ``BaseBackend.get_int_specialization``). Bools and
    floats are not specialized, and these kernels take none: they raise here.
    tests/tools/test_compile_check.py checks this against triton's own function.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a runtime int argument: {value!r} ({type(value).__name__})")
    if value == 1:
        return "1"
    if -2**31 <= value < 2**31:
        ty = "i32"
    elif -2**63 <= value < 2**63:
        ty = "i64"
    elif 0 <= value < 2**64:
        ty = "u64"
    else:
        raise OverflowError(f"integer to be specialized too large to represent: {value}")
    return ty + (":D" if value % 16 == 0 else "")


def _runtime_ints(v: LaunchVariant) -> list[str]:
    """The kernel's runtime int parameters (neither tl.constexpr nor *_ptr nor a float), in order."""
    params = inspect.signature(v.spec.python_fn()).parameters
    return [n for n, p in params.items()
            if "constexpr" not in str(p.annotation) and not n.endswith("_ptr") and n not in v.spec.float_args]


def _int_keys(v: LaunchVariant) -> dict[str, str]:
    """int argument -> jit_int_key for a launched variant; for a generic one, "1" for the layout's
    unit strides and "i32" (no hint) for the rest, except a clamped pool variant's or aligned
    tiles': the one specialization aligned launches compile to (kernels/alignment.py;
    the kernel module's ALIGNED_UNIT_INTS "1", and n_col_tiles with wide pool tiles; its
    ALIGNED_FREE_INTS "i32"; every other int "i32:D")."""
    names = _runtime_ints(v)
    if v.ints is None:
        for stride in LAYOUTS[v.layout]:
            if stride not in names:
                raise ValueError(f"{v.spec.name}: no stride argument {stride!r}")
        if v.clamped or v.aligned:
            mod = pointwise_pool if v.kernel == "pointwise_pool" else reduce_conv
            ones = mod.ALIGNED_UNIT_INTS + (("n_col_tiles",) if v.wide_pool else ())
            return {n: "1" if n in ones else "i32" if n in mod.ALIGNED_FREE_INTS else "i32:D" for n in names}
        return {n: "1" if n in LAYOUTS[v.layout] else "i32" for n in names}
    keys = dict(v.ints)
    if list(keys) != names:
        raise ValueError(f"{v.spec.name}: specialized ints {list(keys)} != the kernel's {names}")
    if any(keys[s] != "1" for s in LAYOUTS[v.layout]):
        raise ValueError(f"{v.label()}: unit strides {LAYOUTS[v.layout]} of layout {v.layout} are not 1")
    return keys


def signature(v: LaunchVariant) -> dict[str, str]:
    """ASTSource signature: arg name -> "*fp16" / "i32" / "constexpr", in parameter order."""
    spec = v.spec
    constexprs = constexpr_values(v)
    ints = _int_keys(v)
    sig: dict[str, str] = {}
    for p in inspect.signature(spec.python_fn()).parameters.values():
        name = p.name
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*fp32" if name in spec.bias_ptrs else ptr_type(v.dtype)
        elif name in spec.float_args:
            sig[name] = "fp32"
        else:
            sig[name] = ints[name].split(":")[0]
    return sig


def constexpr_values(v: LaunchVariant) -> dict[str, Any]:
    """Every constexpr of the compiled variant: the kernel's tl.constexpr parameters and the ints
    equal to 1 (generic: the unit strides of the memory format). Raises if they drift from the
    kernel's parameters."""
    spec = v.spec
    params = inspect.signature(spec.python_fn()).parameters
    declared = [n for n, p in params.items() if "constexpr" in str(p.annotation)]
    values = spec.constexprs(v.config, v)
    if set(declared) != set(values):
        raise ValueError(f"{spec.name}: kernel constexprs {sorted(declared)} != aot.py's {sorted(values)}")
    for name, key in _int_keys(v).items():
        if key == "1":
            values[name] = 1
    return values


def attributes(v: LaunchVariant) -> dict[tuple[int, ...], list]:
    """ASTSource attrs: every pointer 16-byte aligned, as the JIT specializes fresh torch
    allocations; for launched variants also every int divisible by 16."""
    sig = signature(v)
    ints = _int_keys(v)
    return {(i,): [["tt.divisibility", 16]] for i, (n, t) in enumerate(sig.items())
            if t.startswith("*") or (n in ints and ints[n].endswith(":D"))}


def compile_options(v: LaunchVariant) -> dict[str, int]:
    """What the launcher passes: num_warps, and num_stages where it chooses one."""
    return v.spec.options(v.config)


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


# ---------------------------------------------------------------- what GoogLeNet launches

# batch only changes M = N*H*W and num_tiles. 256 makes both divisible by 16 on most blocks;
# 1 makes M not divisible at 14x14 and 7x7 and num_tiles == 1 (a constexpr) at 7x7.
GOOGLENET_BATCHES: tuple[int, ...] = (1, 256)
# SMs of the GPU the recorded launches size their grid for (reduce_conv's programs and column
# split, hence its n_split / num_items specializations): H100 and H200 have 132. A GPU with another
# count may specialize those two ints differently; the generic variants cover any value.
RECORD_SMS = 132
# the SM architectures the launches are recorded for (kernels/gpu.py, sm_arch): they pick a config's
# aligned tiles (ReduceConvConfig.aligned, PointwiseConfig.aligned); each is recorded with RECORD_SMS SMs
RECORD_ARCHS: tuple[int, ...] = (80, 90)
# memory format name (LAYOUTS) -> torch.memory_format attribute
_MEMORY_FORMATS = {"nchw": "contiguous_format", "nhwc": "channels_last"}
# launch order of fused_inception.forward._forward_triton: branch of each launch, per kernel
_BRANCHES = {"pointwise_pool": ("b1", "pool"), "reduce_conv": ("b3", "b5")}
# the stem's bn_relu_pool launches: the model whose stem units have a BatchNorm (the paper's
# have none), at the input size of the blocks' shapes (GOOGLENET_BLOCKS); their launch names are
# "torchvision/<unit>/N<batch>/stem"
STEM_MODEL = "torchvision"
STEM_INPUT_SIZE = 224
STEM_BRANCH = "stem"


@dataclass(frozen=True)
class RecordedLaunch:
    """One kernel launch of a GoogLeNet block as the library makes it (arguments recorded)."""

    kernel: str
    args: tuple
    kwargs: dict
    model: str  # "paper" / "torchvision"
    block: str  # "3a" .. "5b", or the stem's conv unit ("conv1")
    batch: int
    layout: str  # "nchw" / "nhwc"
    dtype: str
    input_precision: str | None  # None: bn_relu_pool (no dot)
    branch: str  # "b1" (1x1), "pool" (pool projection), "b3", "b5"; "stem" for bn_relu_pool
    arch: int | None  # the SM architecture recorded for (kernels/gpu.py, sm_arch); None: the stem's (none consulted)

    def name(self) -> str:
        return f"{self.model}/{self.block}/N{self.batch}/{self.branch}"


class _Recorder:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args, **kwargs)`` records, runs nothing."""

    def __init__(self, name: str, sink: list):
        self.name, self.sink = name, sink

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.sink.append((self.name, args, kwargs))


@contextlib.contextmanager
def recording_launches() -> Iterator[list]:
    """Within the block every launch of a KERNELS kernel appends (kernel, args, kwargs) to the
    yielded list instead of running (the launchers look their kernel up as a module global at
    call time). Not thread-safe: it swaps module attributes."""
    calls: list = []
    saved = []
    try:
        for spec in KERNELS.values():
            mod = importlib.import_module(f"fused_inception.kernels.{spec.module}")
            saved.append((mod, spec.attr, getattr(mod, spec.attr)))
            setattr(mod, spec.attr, _Recorder(spec.name, calls))
        yield calls
    finally:
        for mod, attr, fn in reversed(saved):
            setattr(mod, attr, fn)


def _meta_params(block_spec, dtype):
    """InceptionParams of a block with meta tensors (shapes only), built by the library's own
    from_conv_weights; biases float32 as the folded ones are."""
    def conv(c_out: int, c_in: int, k: int = 1):
        return (torch.empty(c_out, c_in, k, k, device="meta"), torch.empty(c_out, device="meta"))

    s = block_spec
    return InceptionParams.from_conv_weights(
        conv(s.ch1x1, s.in_channels), conv(s.ch3x3red, s.in_channels), conv(s.ch3x3, s.ch3x3red, s.k3),
        conv(s.ch5x5red, s.in_channels), conv(s.ch5x5, s.ch5x5red, s.k5), conv(s.pool_proj, s.in_channels),
        relu=s.relu, dtype=dtype)


def record_googlenet_launches(batches: tuple[int, ...] | list[int] = GOOGLENET_BATCHES,
                              models: tuple[str, ...] = VARIANTS,
                              gpu: str | None = None, arch: int = RECORD_ARCHS[-1]) -> list[RecordedLaunch]:
    """Every kernel launch of GoogLeNet's nine blocks, recorded from the library's own forward.

    For each model variant, block, launchable (dtype, precision), memory format and batch,
    ``fused_inception.forward._forward_triton`` runs on meta tensors (its ``dot_precision`` pinned to
    the precision and its ``gpu_name`` to ``gpu``: None launches the default configs, a GPU name
    that GPU's tuned ones; grids sized for RECORD_SMS SMs of SM architecture ``arch``; output allocated as
    ``inception_forward`` does, c0 = 0 as GoogLeNet calls it) with the kernels replaced by recorders: nothing is computed or allocated, and the
    arguments are exactly what the launchers pass.
    """
    precisions = list(dict.fromkeys((d, p) for _, d, p, _ in launchable_configs()))
    out: list[RecordedLaunch] = []
    saved = forward.dot_precision, forward.gpu_name, kernel_gpu.sm_count, kernel_gpu.sm_arch
    try:
        forward.gpu_name = lambda x: gpu
        kernel_gpu.sm_count = lambda device: RECORD_SMS
        kernel_gpu.sm_arch = lambda device: arch
        with recording_launches() as calls:
            for model in models:
                for block, (_, size) in GOOGLENET_BLOCKS.items():
                    bspec = googlenet_spec(block, model)
                    for dtype_name, precision in precisions:
                        dtype = getattr(torch, dtype_name)
                        params = _meta_params(bspec, dtype)
                        forward.dot_precision = lambda x, _p=precision: _p
                        for layout, fmt in _MEMORY_FORMATS.items():
                            for n in batches:
                                x = torch.empty((n, bspec.in_channels, size, size), dtype=dtype, device="meta",
                                                memory_format=getattr(torch, fmt))
                                y = torch.empty((n, params.out_channels, size, size), dtype=dtype, device="meta",
                                                memory_format=forward.output_memory_format(x))
                                calls.clear()
                                forward._forward_triton(x, params, y, 0)
                                seen: dict[str, int] = {}
                                for kernel, args, kwargs in calls:
                                    i = seen[kernel] = seen.get(kernel, -1) + 1
                                    out.append(RecordedLaunch(kernel, args, kwargs, model, block, int(n), layout,
                                                              dtype_name, precision, _BRANCHES[kernel][i], arch))
    finally:
        forward.dot_precision, forward.gpu_name, kernel_gpu.sm_count, kernel_gpu.sm_arch = saved
    return out


def launched_variant(rec: RecordedLaunch) -> LaunchVariant:
    """The specialization the JIT compiles for one recorded launch (``launches`` = that launch).

    Checks on the way that the launch matches what compile-check assumes: the constexprs and
    compile options are those of a config launchable_configs() lists for its (dtype, precision),
    tensors have the variant's pointer types, and the layout's unit strides are 1.
    """
    spec = KERNELS[rec.kernel]
    kwargs = dict(rec.kwargs)
    options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
    bound = inspect.signature(spec.python_fn()).bind(*rec.args, **kwargs)
    got_constexprs: dict[str, Any] = {}
    for base in spec.launch_bases(rec, kwargs):
        want_constexprs = spec.constexprs(base.config, base)
        got_constexprs = {n: bound.arguments[n] for n in want_constexprs}
        if got_constexprs == want_constexprs and options == compile_options(base):
            break
    else:
        raise ValueError(f"{rec.name()}: launched with {got_constexprs} {options}, which is no launchable "
                         f"config of {rec.kernel} {rec.dtype} {rec.input_precision}")
    ints = []
    for name, value in bound.arguments.items():
        if name in want_constexprs:
            continue
        if name in spec.float_args:
            # an int passed here would be specialized as one (and 1 made a constexpr)
            if not isinstance(value, float):
                raise ValueError(f"{rec.name()}: {name} is {value!r}, compile-check assumes a float (fp32)")
            continue
        if name.endswith("_ptr"):
            want = "*fp32" if name in spec.bias_ptrs else ptr_type(rec.dtype)
            try:
                got = ptr_type(value.dtype)
            except (AttributeError, ValueError):  # not a tensor, or not of a kernel dtype
                got = "*?"
            if got != want:
                raise ValueError(f"{rec.name()}: {name} is {got}, compile-check assumes {want}")
            continue
        ints.append((name, jit_int_key(value)))
    v = replace(base, ints=tuple(ints), launches=(rec.name(),))
    _int_keys(v)  # validates names and the layout's unit strides
    return v


def googlenet_launch_variants(kernels: tuple[str, ...] | list[str] | None = None,
                              batches: tuple[int, ...] | list[int] = GOOGLENET_BATCHES,
                              gpus: tuple[str | None, ...] | list[str | None] | None = None,
                              archs: tuple[int, ...] | list[int] = RECORD_ARCHS) -> list[LaunchVariant]:
    """The distinct specializations GoogLeNet's blocks launch (see record_googlenet_launches), each
    with the sorted names of the launches that use it, ordered like launch_variants(); then its
    stem's (stem_launch_variants). Only ``kernels``' (None: every kernel's). Recorded
    for each of ``archs``: a launch that takes aligned tiles gives a variant per arch
    (``LaunchVariant.compiled_for``), the others one variant for all.

    ``gpus``: whose configs to record, None for the defaults; by default the defaults and every
    GPU with a tuned file checked in (kernels/tuned/), so a tuned choice is compiled exactly as
    GoogLeNet launches it on that GPU. The configs are looked up as at run time: a file for the
    same GPU under $FUSED_INCEPTION_TUNED_DIR takes precedence.
    """
    if gpus is None:
        gpus = [None] + [t.gpu for t in shipped_tables()]
    # the blocks launch _BRANCHES' kernels only: not recorded when none of them is asked for
    wanted = kernels is None or any(k in kernels for k in _BRANCHES)
    recs = [rec for gpu in gpus for arch in archs if wanted
            for rec in record_googlenet_launches(batches, gpu=gpu, arch=arch)]
    order = {(k, d, p, config_name(c)): i for i, (k, d, p, c) in enumerate(launchable_configs())}
    layouts = list(LAYOUTS)
    blocks = sorted(_merged(recs, kernels),
                    key=lambda v: (order[(v.kernel, v.dtype, v.input_precision, v.config_name)],
                                   v.ksize or 0, layouts.index(v.layout), v.arch or 0, v.ints))
    return blocks + stem_launch_variants(kernels, batches)


def stem_launch_variants(kernels: tuple[str, ...] | list[str] | None = None,
                         batches: tuple[int, ...] | list[int] = GOOGLENET_BATCHES) -> list[LaunchVariant]:
    """The distinct specializations the stem's epilogues launch (see record_stem_launches), each
    with the names of the launches that use it, in recording order (dtype, layout, unit). No
    tuned config and no SM architecture enters these launches: recorded once."""
    return _merged(record_stem_launches(batches), kernels)


def _merged(recs: list[RecordedLaunch], kernels: tuple[str, ...] | list[str] | None) -> list[LaunchVariant]:
    """The launched variants of ``recs`` (those of ``kernels``; None: all), identical
    specializations merged, each with the names of its launches, first seen first."""
    merged: dict[LaunchVariant, list[str]] = {}
    for rec in recs:
        if kernels is not None and rec.kernel not in kernels:
            continue
        v = launched_variant(rec)
        merged.setdefault(v, []).extend(v.launches)
    return [replace(v, launches=tuple(dict.fromkeys(names))) for v, names in merged.items()]


def record_stem_launches(batches: tuple[int, ...] | list[int] = GOOGLENET_BATCHES,
                         size: int = STEM_INPUT_SIZE) -> list[RecordedLaunch]:
    """Every bn_relu_pool launch of GoogLeNet's (torchvision) stem, recorded from the library's
    own epilogue call.

    For each dtype (the model cast to it: the BatchNorm's parameters and buffers are in it too),
    memory format and batch, each unit of ``stem.STEM_SLOTS`` and the pool after it go through
    ``fused_inception.stem.bn_relu_pool`` (pool geometry, output size and allocation as
    ``FusedStemUnit`` launches them) on meta tensors of ``size`` x ``size`` input, with the kernel
    replaced by a recorder. The conv's output is allocated in the memory format, as cuDNN writes
    it (the meta conv gives its shape only: it would not keep channels_last).
    """
    out: list[RecordedLaunch] = []
    with recording_launches() as calls:
        for dtype_name in DTYPES:
            dtype = getattr(torch, dtype_name)
            # a model per dtype: Module.to converts parameters in place, and the recorded
            # launches keep the BN's tensors
            with torch.device("meta"):
                model = GoogLeNet(STEM_MODEL, aux_logits=False, init_weights=False).to(dtype)
            for layout, fmt in _MEMORY_FORMATS.items():
                for n in batches:
                    x = torch.empty((n, 3, size, size), dtype=dtype, device="meta")
                    for slot, pool_slot in stem.STEM_SLOTS:
                        unit = getattr(model, slot)
                        y = torch.empty(unit.conv(x).shape, dtype=dtype, device="meta",
                                        memory_format=getattr(torch, fmt))
                        calls.clear()
                        x = stem.bn_relu_pool(y, unit.bn, getattr(model, pool_slot) if pool_slot else None)
                        ((kernel, args, kwargs),) = calls
                        out.append(RecordedLaunch(kernel, args, kwargs, STEM_MODEL, slot, int(n), layout, dtype_name,
                                                  None, STEM_BRANCH, None))
    return out
