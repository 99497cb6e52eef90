"""A GoogLeNet stem conv unit and the max-pool after it, run as the conv and one epilogue launch.

The torchvision-variant stem is conv -> BatchNorm -> ReLU, three times, with a 3x3/2 max-pool
after the first and the third (conv1, maxpool1, conv2, conv3, maxpool2). In inference,
``FusedStemUnit`` runs the unit's own conv (cuDNN, unchanged), then
``kernels.bn_relu_pool`` once: the BN with its running statistics, the ReLU and the pool in one
pass over the conv's output, where eager PyTorch makes three (BN, ReLU, pool), each reading and
writing the whole tensor (the pool writing a quarter of it). The result equals the unit's up to
the BN's own float32 arithmetic (the kernel's docstring).

Everything else runs the original modules, exactly: BN in training, a call that autograd records
(a training step, or an input or parameter that requires grad), torch.compile (which fuses the
same ops itself) and torch.jit.trace, float64, the CPU without Triton's interpreter, a conv output
with offsets beyond the kernel's int32, and hooks on the unit, its conv, BN or pool (or global
module hooks), which then fire as in the plain network, with one ``FusedFallbackWarning`` per call.
Hooks on the FusedStemUnit itself run as on any module: they see the unit's input and the pooled
output (the pool's slot in the network holds an ``nn.Identity``).

``patching.fuse`` swaps the units of a GoogLeNet it recognises (``STEM_SLOTS``) and puts an
``nn.Identity`` where the pool was; ``unfuse`` puts the original unit (with any child replaced on
the FusedStemUnit) and pool back. State dict keys are unchanged: the unit's conv and bn are
adopted under their own names, and a max-pool holds no state.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .block_io import output_memory_format
from .dtypes import KERNEL_DTYPES
from .forward import interpreter_turn, note_launches, uses_triton
from .hooks import FusedFallbackWarning, describe_hooks, has_hooks
from .kernels.bn_relu_pool import int32_offsets, launch_bn_relu_pool

Tensor = torch.Tensor

# a unit slot and the max-pool slot after it, in the order GoogLeNet's forward runs them (its
# stem: conv1, maxpool1, conv2, conv3, maxpool2; the same names in torchvision's GoogLeNet)
STEM_SLOTS: tuple[tuple[str, str | None], ...] = (("conv1", "maxpool1"), ("conv2", None), ("conv3", "maxpool2"))


def _square(value, what: str) -> int:
    """An int from an int or a pair of equal ints (ValueError otherwise)."""
    if isinstance(value, int):
        return value
    if len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    raise ValueError(f"{what} {value!r}: only square pools are fused")


def pool_geometry(pool: nn.MaxPool2d | None) -> tuple[int, int, int, bool]:
    """(kernel, stride, padding, ceil_mode) of a max-pool the epilogue can run; (1, 1, 0, False)
    for none. ValueError for what it cannot: non-square windows, dilation, returned indices,
    padding over half the window (which F.max_pool2d refuses)."""
    if pool is None:
        return 1, 1, 0, False
    if pool.return_indices:
        raise ValueError("a max-pool that returns indices is not fused")
    if _square(pool.dilation, "dilation") != 1:
        raise ValueError(f"dilation {pool.dilation!r}: only undilated pools are fused")
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    kernel, padding = _square(pool.kernel_size, "kernel_size"), _square(pool.padding, "padding")
    if padding > kernel // 2:  # F.max_pool2d refuses it too
        raise ValueError(f"padding {padding} is more than half the kernel {kernel}")
    return kernel, _square(stride, "stride"), padding, bool(pool.ceil_mode)


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """F.max_pool2d's output size along one dimension of ``size`` (its rule for ceil_mode: the
    last window must start inside the input or its left padding)."""
    span = size + 2 * padding - kernel
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def bn_relu_pool(y: Tensor, bn: nn.BatchNorm2d, pool: nn.MaxPool2d | None) -> Tensor:
    """``pool(relu(bn(y)))`` of an eval-mode, affine ``bn`` with running statistics, in one launch
    of kernels.bn_relu_pool.

    y: [N, C, H, W] (NCHW or channels_last) float32, float16 or bfloat16, on a CUDA device (or the
    CPU under Triton's interpreter), its offsets within int32 (kernels.bn_relu_pool.int32_offsets).
    Returns [N, C, HO, WO] in y's dtype and memory format, HO and WO being the pool's output size
    (H and W without a pool); ValueError where a pool has no output. Counted by forward.count_launches; under Triton's interpreter
    threads take turns (forward.interpreter_turn).
    """
    kernel, stride, padding, ceil_mode = pool_geometry(pool)
    n, c, h, w = y.shape
    ho = pool_output_size(h, kernel, stride, padding, ceil_mode)
    wo = pool_output_size(w, kernel, stride, padding, ceil_mode)
    if pool is not None and (ho < 1 or wo < 1):
        raise ValueError(f"a {kernel}x{kernel}/{stride} pool of a {h}x{w} map has no output (as in F.max_pool2d)")
    out = torch.empty((n, c, ho, wo), dtype=y.dtype, device=y.device, memory_format=output_memory_format(y))
    # the kernel reads each BN tensor as a dense vector
    stats = [t.contiguous() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
    with interpreter_turn(y):
        note_launches("bn_relu_pool", launch_bn_relu_pool(y, *stats, bn.eps, out, kernel, stride, padding))
    return out


def stem_hooks(unit: nn.Module, pool: nn.Module | None) -> list[str]:
    """One line per hook that running ``unit`` and ``pool`` would fire (hooks.describe_hooks;
    global hooks once), e.g. ``"forward hook f on 'unit.bn'"``."""
    return describe_hooks(nn.ModuleDict({"unit": unit, **({"pool": pool} if pool is not None else {})}))


def fusable_unit(unit: nn.Module) -> bool:
    """Whether ``unit`` is a conv unit the epilogue can finish: a ``BasicConv2d`` (this package's,
    with its ReLU, or torchvision's) whose ``bn`` is an ``nn.BatchNorm2d`` with affine parameters
    and running statistics."""
    cls = type(unit)
    if cls.__name__ != "BasicConv2d" or cls.__module__ not in ("fused_inception.models.inception",
                                                               "torchvision.models.googlenet"):
        return False
    bn = getattr(unit, "bn", None)
    return (isinstance(getattr(unit, "conv", None), nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.affine
            and bn.track_running_stats and getattr(unit, "relu", True) is True)


class FusedStemUnit(nn.Module):
    """A stem conv unit (conv -> BatchNorm -> ReLU) and the max-pool after it, if any:
    ``(N, C_in, H, W) -> (N, C_out, HO, WO)``, as ``pool(unit(x))``.

    Args:
        unit: the conv unit (``fusable_unit``); its children are adopted under their own names.
        pool: the ``nn.MaxPool2d`` that follows it in the network, or None (``pool_geometry``
            says which it fuses); registered as the child ``pool``, which adds no state.
        pool_slot: the attribute of the network the pool came from (``unfuse`` puts it back
            there), None without a pool.

    Calling it runs the conv and one epilogue launch in inference, the original modules otherwise
    (the module docstring says when).
    """

    def __init__(self, unit: nn.Module, pool: nn.MaxPool2d | None = None, pool_slot: str | None = None) -> None:
        super().__init__()
        if not fusable_unit(unit):
            raise ValueError(f"{type(unit).__name__} is not a fusable stem conv unit "
                             "(a BasicConv2d with ReLU and an affine nn.BatchNorm2d with running statistics)")
        if (pool is None) != (pool_slot is None):
            raise ValueError("a pool needs the slot it came from, and a slot needs a pool")
        pool_geometry(pool)  # refuse what the epilogue cannot pool
        for name, child in unit.named_children():
            self.add_module(name, child)
        self.pool = pool
        self.pool_slot = pool_slot
        # the plain unit, not registered (its children are ours already): unfuse returns it
        object.__setattr__(self, "_unit", unit)
        self.training = unit.training

    def to_module(self) -> nn.Module:
        """The original unit, with this module's current children (a conv or BN replaced on the
        FusedStemUnit goes back with it) and mode."""
        self._sync_unit()
        self._unit.training = self.training
        return self._unit

    def _sync_unit(self) -> None:
        """Point the original unit's children at this module's, where one was replaced here."""
        for name, child in self._modules.items():
            if name != "pool" and self._unit._modules.get(name) is not child:
                self._unit._modules[name] = child

    def extra_repr(self) -> str:
        return f"fused={type(self._unit).__name__}, pool_slot={self.pool_slot}"

    def _modules_now(self) -> list[nn.Module]:
        """What a call runs: the original unit object (hooks on it count) and this module's
        children."""
        return [self._unit, *(child for child in self._modules.values() if child is not None)]

    def _fused_call(self, x: Tensor) -> bool:
        """Whether this call runs the epilogue launch (the module docstring's conditions; hooks
        are the caller's)."""
        bn = self.bn
        if bn.training or bn.running_mean is None or bn.running_var is None or bn.weight is None or bn.bias is None:
            return False
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or not uses_triton(x):
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        return True

    def forward(self, x: Tensor) -> Tensor:
        hooked = has_hooks(self._modules_now())
        if not hooked and self._fused_call(x):
            y = self.conv(x)
            if y.dtype in KERNEL_DTYPES and int32_offsets(y):
                return bn_relu_pool(y, self.bn, self.pool)
            # float64, or offsets beyond the kernel's int32: the unit's own ops
            y = torch.relu_(self.bn(y))
            return self.pool(y) if self.pool is not None else y
        self._sync_unit()
        if hooked and not torch.compiler.is_compiling():
            warnings.warn(FusedFallbackWarning(
                "FusedStemUnit runs its original modules for this call, so that these hooks fire: "
                + "; ".join(stem_hooks(self._unit, self.pool))), stacklevel=2)
        y = self._unit(x)
        return self.pool(y) if self.pool is not None else y
