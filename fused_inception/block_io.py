"""What every tactic of a fused block takes and gives: the input-shape check and the output's
memory format. Shared by the kernels' forward (forward.py), the aten tactic (aten_forward.py),
the BN-training op and the module, so that each path refuses and lays out the same way.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def output_memory_format(x: Tensor) -> torch.memory_format:
    """channels_last when ``x`` is (only) channels_last-contiguous, as PyTorch convs decide."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def check_input_shape(x: Tensor, in_channels: int) -> None:
    """TypeError/ValueError unless ``x`` is a 4-D tensor with ``in_channels`` channels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected x to be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input [N, C, H, W], got {x.dim()}-D with shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"expected {in_channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
