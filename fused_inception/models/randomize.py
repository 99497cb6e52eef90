"""Random parameters for parity checks: He-scaled weights, random biases, random nonzero BN
statistics and affine parameters, so that BN folding and both paddings are really exercised
(default inits leave BN an identity and the logits nearly independent of the input)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Overwrite every Conv2d/Linear weight and bias and every BatchNorm2d's statistics and affine
    parameters in place (drawn on the CPU from ``generator``); returns ``model``."""
    def draw(shape) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(draw(m.weight.shape) * (2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(draw(m.bias.shape) * 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(draw(c) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            if m.weight is not None:
                m.weight.copy_(draw(c).abs() + 0.5)
                m.bias.copy_(draw(c) * 0.2)
    return model
