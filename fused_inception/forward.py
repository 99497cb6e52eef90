"""The functional forward of one Inception block: validation, output allocation and dispatch.

``inception_forward`` runs the block in four Triton launches (branch 1, the pool projection, the
reduce -> k3 x k3 branch, the reduce -> k5 x k5 branch), each writing its channel slice of one
output. CUDA tensors, and CPU tensors while the Triton interpreter is on (``TRITON_INTERPRET=1``),
go to the kernels; other CPU tensors run the aten tactic (aten_forward.py: the same computation on
PyTorch's own kernels, also in float64), so that a fused model keeps working on the CPU.

The input-shape check and the output-memory-format rule live in block_io.py (every tactic shares
them); they are imported here under the names the callers of this module know.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from . import kernels
from .aten_forward import aten_inception_forward, aten_weights
from .block_io import check_input_shape, output_memory_format
from .dtypes import KERNEL_DTYPES, dtype_name
from .kernels.tf32 import round_tf32_tensor
from .params import InceptionParams
from .thread_stacks import ThreadStack

Tensor = torch.Tensor

# the PyTorch (aten) path also takes float64 (gradcheck and float64 references)
TORCH_PATH_DTYPES = KERNEL_DTYPES + (torch.float64,)


def interpreter_enabled() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def uses_triton(x: Tensor) -> bool:
    """Whether ``inception_forward`` sends ``x`` to the Triton kernels (else the PyTorch path)."""
    return x.is_cuda or (x.device.type == "cpu" and interpreter_enabled())


def cudnn_conv_allows_tf32() -> bool:
    """PyTorch's TF32 rule for fp32 convs: ``torch.backends.cudnn.conv.fp32_precision`` (the
    current API; "none" defers to ``torch.backends.fp32_precision``), else the legacy
    ``torch.backends.cudnn.allow_tf32`` (which raises once the two APIs have been mixed)."""
    for precision in (getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None),
                      getattr(torch.backends, "fp32_precision", None)):
        if precision in ("tf32", "ieee"):
            return precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


def runs_tf32(device_type: str, dtype: torch.dtype) -> bool:
    """Whether float32 work of ``dtype`` on ``device_type`` runs in TF32: float32 on CUDA where
    PyTorch's conv rule allows it (cuDNN's convs, and the kernels' dots, which follow it)."""
    return dtype == torch.float32 and device_type == "cuda" and cudnn_conv_allows_tf32()


def dot_precision(x: Tensor) -> str:
    """TF32 for fp32 CUDA inputs only where PyTorch's conv rule allows it, IEEE otherwise."""
    return "tf32" if runs_tf32(x.device.type, x.dtype) else "ieee"


def gpu_name(x: Tensor) -> str | None:
    """The name of the CUDA device ``x`` lives on, the key of its tuned configs
    (kernels/tuned/); None off CUDA (the interpreter launches the defaults)."""
    if x.device.type != "cuda":
        return None
    index = x.device.index if x.device.index is not None else torch.cuda.current_device()
    return cuda_device_name(index)


@functools.lru_cache(maxsize=None)
def cuda_device_name(index: int) -> str:
    """torch.cuda.get_device_name of device ``index``, asked once per process (tens of µs a call)."""
    return torch.cuda.get_device_name(index)


INT32_MAX = 2**31 - 1


def kernel_index_extents(shape: tuple[int, int, int, int], params: InceptionParams) -> dict[str, int]:
    """A bound on the largest value each int32 index of the kernels can take for an input of
    ``shape`` [N, C_in, H, W], over every launchable config (the pickers and tuned files choose
    among kernels.configs' tables). Element offsets into x, out and the scratch are int64 (strides
    and batch/row/column products are widened first); these three are not:

    * flattened pixel index: pixel tiles end up to one tile past N*H*W, and a reduce -> k x k
      tile's run reaches its halo (pad*W + pad pixels each side) and a BLOCK_HALO chunk beyond;
    * scratch row offset: row * padded reduced channels within one program's scratch slot;
    * weight index: row * columns into a dense weight array (its element count).
    """
    n, _, h, w = shape
    pixels = n * h * w
    # every config's tiles and its aligned tiles (larger: longer runs, wider scratch rows)
    reduce_configs = [t for c in kernels.configs.REDUCE_CONV_CONFIGS.values() for t in (c, *(a for _, a in c.aligned))]
    pointwise_tile = max(t.BLOCK_M for c in kernels.configs.POINTWISE_CONFIGS.values()
                         for t in (c, *(a for _, a in c.aligned)))
    branches = ((params.k3, params.w_red3.shape[1]), (params.k5, params.w_red5.shape[1]))
    halo_rows = max(c.halo_rows(k, w) for c in reduce_configs for k, _ in branches)
    r_pad = max(-(-r // c.BLOCK_R) * c.BLOCK_R for c in reduce_configs for _, r in branches)
    weights = (params.w_point, params.w_red3, params.w_conv3, params.w_red5, params.w_conv5)
    return {
        "flattened pixel index": pixels + max(halo_rows, pointwise_tile) - 1,
        "scratch row offset": halo_rows * r_pad - 1,
        "weight index": max(t.numel() for t in weights) - 1,
    }


def check_index_range(shape: tuple[int, int, int, int], params: InceptionParams) -> None:
    """ValueError for an input shape whose kernel indices would overflow int32 (checked on
    every path, so a shape that runs on the CPU also runs on a GPU)."""
    n, _, h, w = shape
    for name, largest in kernel_index_extents(shape, params).items():
        if largest > INT32_MAX:
            raise ValueError(
                f"input shape {shape} is too large for the kernels' int32 indices: the {name} would reach "
                f"{largest}, above 2**31 - 1 (N*H*W = {n * h * w} pixels); split the batch or the image")


def check_inputs(x: Tensor, params: InceptionParams, out: Tensor | None, out_channel_offset: int) -> None:
    """Raise TypeError/ValueError naming expected and actual for input the block cannot take."""
    check_input_shape(x, params.in_channels)
    if x.dtype not in (KERNEL_DTYPES if uses_triton(x) else TORCH_PATH_DTYPES):
        extra = "" if uses_triton(x) else " (or float64 on the PyTorch path)"
        raise TypeError(f"expected input dtype float32, float16 or bfloat16{extra}, got {x.dtype}")
    if x.dtype != params.dtype:
        raise TypeError(f"input dtype {x.dtype} does not match the weights' dtype {params.dtype}")
    if x.device != params.device:
        raise ValueError(f"input is on {x.device} but the weights are on {params.device}")
    check_index_range(tuple(x.shape), params)
    if out is None:
        if out_channel_offset != 0:
            raise ValueError("out_channel_offset needs an out tensor")
        return
    n, _, h, w = x.shape
    need = out_channel_offset + params.out_channels
    if out.dim() != 4 or out.shape[0] != n or out.shape[2:] != (h, w):
        raise ValueError(f"expected out of shape [{n}, >= {need}, {h}, {w}], got {tuple(out.shape)}")
    if out_channel_offset < 0:
        raise ValueError(f"out_channel_offset must be >= 0, got {out_channel_offset}")
    if out.shape[1] < need:
        raise ValueError(
            f"out has {out.shape[1]} channels; the block writes [{out_channel_offset}, {need}) and needs at least {need}"
        )
    if out.dtype != x.dtype:
        raise TypeError(f"out dtype {out.dtype} does not match the input dtype {x.dtype}")
    if out.device != x.device:
        raise ValueError(f"out is on {out.device} but the input is on {x.device}")


def inception_forward(
    x: Tensor,
    params: InceptionParams,
    out: Tensor | None = None,
    out_channel_offset: int = 0,
) -> Tensor:
    """Run one Inception block (eval semantics: BN already folded into ``params``).

    Args:
        x: ``[N, C_in, H, W]``, NCHW or channels_last (any strides), dtype = ``params.dtype``:
            float32, float16 or bfloat16 on the kernels, also float64 on the PyTorch path.
        params: the block's folded weights in kernel layout, on x's device.
        out: optional ``[N, >= out_channel_offset + C_total, H, W]`` tensor in x's dtype and
            device (any strides) to write into, e.g. a larger concatenation buffer.
        out_channel_offset: first channel of ``out`` that the block writes.

    Returns:
        ``out`` with the block's outputs (its branches in ``params.cat_order``) in channels
        ``[out_channel_offset, out_channel_offset + params.out_channels)``; channels outside that
        range are not touched. Without ``out``, a new ``[N, C_total, H, W]`` tensor in the
        input's memory format (``output_memory_format``).

    Raises:
        TypeError: x not a tensor, or x, params and out in different dtypes, or a dtype the path
            does not take.
        ValueError: x not 4-D or without C_in channels; x, params or out on different devices;
            ``out`` of the wrong shape or too few channels for the offset; a negative offset, or
            an offset without ``out``; a shape too large for the kernels' int32 indices.
    """
    check_inputs(x, params, out, out_channel_offset)
    if not uses_triton(x):
        # the aten tactic (one implementation of the PyTorch path); its result is already in
        # output_memory_format(x)
        result = aten_inception_forward(x, aten_weights(params))
        if out is None:
            return result
        out[:, out_channel_offset:out_channel_offset + params.out_channels].copy_(result)
        return out
    if out is None:
        n, _, h, w = x.shape
        out = torch.empty((n, params.out_channels, h, w), dtype=x.dtype, device=x.device,
                          memory_format=output_memory_format(x))
    with interpreter_turn(x):
        _forward_triton(x, params, out, out_channel_offset)
    return out


# --- counting the kernel launches ------------------------------------------------------------

@dataclass
class LaunchCount:
    """Triton kernel launches made while ``count_launches`` was active, per kernel."""

    pointwise_pool: int = 0
    reduce_conv: int = 0
    bn_relu_pool: int = 0  # the fused stem's epilogue (stem.py)

    @property
    def total(self) -> int:
        return self.pointwise_pool + self.reduce_conv + self.bn_relu_pool


# the LaunchCounts being filled in each thread (innermost last)
_counting = ThreadStack()


@contextlib.contextmanager
def count_launches() -> Iterator[LaunchCount]:
    """Count the fused kernels' launches that this thread makes inside the ``with`` block::

        with count_launches() as launches:
            inception_forward(x, params)          # or a FusedInception / fused model
        assert (launches.pointwise_pool, launches.reduce_conv) == (2, 2)

    Counted from what the kernels' launchers report (each returns the number of
    ``kernel[grid](...)`` launches it made): an input with no pixels launches nothing and counts
    nothing, the aten path counts nothing, and neither do replays of a captured CUDA graph (no
    Python runs then). Nested blocks each count.
    """
    with _counting.pushed(LaunchCount()) as count:
        yield count


def interpreter_turn(x: Tensor):
    """A context for launching kernels on ``x``: on the CPU (Triton's interpreter, which keeps the
    running kernel's state in globals) threads take turns; on CUDA nothing is held."""
    return _INTERPRETER_LOCK if not x.is_cuda else contextlib.nullcontext()


def note_launches(kernel: str, launches: int) -> None:
    """Add ``launches`` of ``kernel`` (a LaunchCount field) to every active count_launches."""
    for count in _counting.items():
        setattr(count, kernel, getattr(count, kernel) + launches)


def _has_pixels(x: Tensor) -> bool:
    """Whether the kernels have work for ``x`` (their launchers return at once for N*H*W == 0)."""
    n, _, h, w = x.shape
    return n * h * w > 0


# Triton's interpreter keeps the running kernel's state (grid, patched triton.language) in
# globals, so two threads interpreting kernels at once corrupt each other: interpreted blocks take
# turns. Compiled (CUDA) launches and the PyTorch path run concurrently.
_INTERPRETER_LOCK = threading.Lock()


def _forward_triton(x: Tensor, params: InceptionParams, out: Tensor, c0: int) -> None:
    name = dtype_name(x.dtype)
    precision = dot_precision(x)
    gpu = gpu_name(x)  # picks the GPU's tuned configs where kernels/tuned/ has a file for it
    launch_pointwise_branches(x, params, out, c0, precision, kernels.pick_pointwise_config(name, precision, gpu))
    launch_reduce_branches(x, params, out, c0, precision, kernels.pick_reduce_conv_config(name, precision, gpu))


def launch_pointwise_branches(x: Tensor, params: InceptionParams, out: Tensor, c0: int, precision: str,
                              config: kernels.PointwiseConfig) -> None:
    """Two launches: the block's 1x1 branch and pool branch into their slices of ``out`` (channel
    offset ``c0``), with an explicit config (the forward passes the picked one, the tuner each
    candidate)."""
    if not _has_pixels(x):
        return
    off1, _, _, offp = (c0 + o for o in params.branch_offsets)
    w, b = _dense(params, "w_point", "b_point")
    if precision == "tf32":  # the kernel rounds its input tiles itself (kernels/tf32.py)
        w = round_tf32_tensor(w)
    note_launches("pointwise_pool", kernels.launch_pointwise_pool(
        x, w, b, params.ch1x1, out, off1, offp, params.relu, precision, config))


def launch_reduce_branches(x: Tensor, params: InceptionParams, out: Tensor, c0: int, precision: str,
                           config: kernels.ReduceConvConfig) -> None:
    """Two launches: the block's reduce -> k3 and reduce -> k5 branches into their slices of
    ``out``, with an explicit config (see launch_pointwise_branches)."""
    if not _has_pixels(x):
        return
    _, off3, off5, _ = (c0 + o for o in params.branch_offsets)
    if precision == "tf32":  # once for both launches; the kernel rounds its scratch itself (kernels/tf32.py)
        x = round_tf32_tensor(x)
    for k, off, fields in ((params.k3, off3, ("w_red3", "b_red3", "w_conv3", "b_conv3")),
                           (params.k5, off5, ("w_red5", "b_red5", "w_conv5", "b_conv5"))):
        w_red, b_red, w_conv, b_conv = _dense(params, *fields)
        if precision == "tf32":
            w_red, w_conv = round_tf32_tensor(w_red), round_tf32_tensor(w_conv)
        note_launches("reduce_conv", kernels.launch_reduce_conv(
            x, w_red, b_red, w_conv, b_conv, k, out, off, params.relu, precision, config))


def _dense(params: InceptionParams, *names: str) -> list[Tensor]:
    # the kernels index weights and biases as dense row-major arrays (a no-op for
    # InceptionParams' own layouts)
    return [getattr(params, name).contiguous() for name in names]
