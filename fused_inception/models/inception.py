"""The conv unit and the one configurable Inception block used by both GoogLeNet variants.

Tensors are NCHW. Module and attribute names follow torchvision's GoogLeNet so that its
state_dict loads unchanged (``branch2.1.bn.running_mean`` and so on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import InceptionSpec


class BasicConv2d(nn.Module):
    """Conv2d, then optional BatchNorm2d, then optional ReLU: ``(N, C_in, H, W) -> (N, C_out, H', W')``.

    Attributes:
        conv: the ``nn.Conv2d`` (carries a bias only when ``bias`` is set).
        bn: an ``nn.BatchNorm2d(out_channels, eps=bn_eps)``, or ``None`` without batch norm.
        relu: whether ReLU is applied last (a bool, not a module).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        bias: bool,
        batch_norm: bool,
        relu: bool = True,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if batch_norm else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        # In place is safe: x is a fresh conv/BN output that nothing else holds.
        return F.relu(x, inplace=True) if self.relu else x


class Inception(nn.Module):
    """One Inception block built from an ``InceptionSpec``: ``(N, in, H, W) -> (N, out, H, W)``.

    ``out = spec.out_channels``; the output is the concatenation along channels, in this order, of

    - ``branch1``: conv unit 1x1 -> ``ch1x1``
    - ``branch2``: Sequential(conv unit 1x1 -> ``ch3x3red``, conv unit k3xk3 -> ``ch3x3``)
    - ``branch3``: Sequential(conv unit 1x1 -> ``ch5x5red``, conv unit k5xk5 -> ``ch5x5``)
    - ``branch4``: Sequential(MaxPool2d 3x3/1 pad 1, conv unit 1x1 -> ``pool_proj``)

    The spec is kept as ``.spec``; k×k convs pad by (k-1)/2 so H and W are kept.
    """

    def __init__(self, spec: InceptionSpec) -> None:
        super().__init__()
        self.spec = spec

        def unit(cin: int, cout: int, k: int) -> BasicConv2d:
            return BasicConv2d(
                cin,
                cout,
                k,
                padding=k // 2,
                bias=spec.conv_bias,
                batch_norm=spec.batch_norm,
                relu=spec.relu,
                bn_eps=spec.bn_eps,
            )

        s = spec
        self.branch1 = unit(s.in_channels, s.ch1x1, 1)
        self.branch2 = nn.Sequential(unit(s.in_channels, s.ch3x3red, 1), unit(s.ch3x3red, s.ch3x3, s.k3))
        self.branch3 = nn.Sequential(unit(s.in_channels, s.ch5x5red, 1), unit(s.ch5x5red, s.ch5x5, s.k5))
        # ceil_mode matches torchvision; with stride 1 and padding 1 it never changes the size.
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            unit(s.in_channels, s.pool_proj, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    def extra_repr(self) -> str:
        return f"in={self.spec.in_channels}, out={self.spec.out_channels}"
