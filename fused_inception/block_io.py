"""What every tactic of a fused block takes and gives: the input-shape check, the output's
memory format, and the layouts the aten tactics and the kernels compute in. Shared by the kernels' forward
(forward.py), the aten tactics (aten_forward.py, aten_bn_forward.py), the BN-training op and the
module, so that each path refuses and lays out the same way.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def output_memory_format(x: Tensor) -> torch.memory_format:
    """channels_last when ``x`` is (only) channels_last-contiguous, as PyTorch convs decide."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def aten_compute_layout(x: Tensor) -> Tensor:
    """``x`` in the layout the aten tactics compute in: channels_last for float32 on the CPU, where
    oneDNN's convs are the faster for it (whole GoogLeNet, 2 threads: eager NCHW takes 1.2-1.4x
    eager channels_last's time in a training step and 1.7-2.0x in inference, README "CPU
    figures"), so an NCHW call costs one copy in and one out; elsewhere as given. Half precision on
    the CPU keeps its layout: PyTorch's channels_last half kernels there lost digits (an fp16
    BN-training step with aten-bn: input gradient 3.2e-2 relative against 4.7e-4 computed NCHW and
    the unfused block's 5.2e-4; tests/test_properties.py, interpreter off), and no CPU timing
    covers half precision. On a GPU cuDNN's layout choice is left to a tuned measurement. The
    result of a tactic is laid out by ``output_memory_format`` of the caller's ``x``, whatever it
    computed in."""
    if x.device.type == "cpu" and x.dtype == torch.float32:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def kernel_compute_layout(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` in ``dtype`` and in the layout a FusedInception runs the kernels (the triton tactic)
    in: channels_last, whatever the caller's layout, so an NCHW call costs one copy in and one out
    (and, in training, the op saves the channels_last copy). Measured on an H200 (bf16, batch 256,
    benchmarks/results/nvidia-h200-20261130-2337.md): the kernels took 1.05-1.85x their
    channels_last time on NCHW input (3a 1.153 against 0.649 ms, 4d 0.972 against 0.525); the two
    copies of a block are modelled at 0.02-0.14 ms (bytes over an assumed 4.3 TB/s, the copy rate
    this workplace's device notes give for an H200). The kernels still take either layout
    (forward.inception_forward); the result is laid out by ``output_memory_format`` of the
    caller's ``x``."""
    return x.to(dtype=dtype, memory_format=torch.channels_last)


def check_input_shape(x: Tensor, in_channels: int) -> None:
    """TypeError/ValueError unless ``x`` is a 4-D tensor with ``in_channels`` channels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected x to be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input [N, C, H, W], got {x.dim()}-D with shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"expected {in_channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
