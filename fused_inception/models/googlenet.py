"""GoogLeNet (Inception v1), as in Szegedy et al. 2014 ("paper") or as in torchvision ("torchvision").

Input ``(N, 3, H, W)`` RGB, NCHW; at 224x224 the stages have the shapes of docs/DESIGN.md §4. The
"torchvision" variant is state_dict-identical to ``torchvision.models.googlenet(weights=None)``
with the same ``aux_logits``; the "paper" variant uses conv + bias + ReLU, true 5x5 convs and LRN.

Output: in training with ``aux_logits``, ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``,
each ``(N, num_classes)``; otherwise the ``(N, num_classes)`` logits tensor alone.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import nn

from ..spec import VARIANTS, googlenet_spec
from .inception import BasicConv2d, Inception

# ImageNet statistics, used by ``transform_input`` to turn inputs normalised with them into
# inputs normalised to [-1, 1] by (x - 0.5) / 0.5, which the ported Caffe weights expect.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutputs(NamedTuple):
    """Training-mode output: main logits and the two aux heads' logits, each ``(N, num_classes)``.

    The order (main, aux after 4d, aux after 4a) is torchvision's.
    """

    logits: torch.Tensor
    aux_logits2: Optional[torch.Tensor]
    aux_logits1: Optional[torch.Tensor]


class InceptionAux(nn.Module):
    """Auxiliary classifier: ``(N, C, H, W) -> (N, num_classes)``.

    pool to 4x4 -> 1x1 conv unit 128 -> flatten 2048 -> fc1 1024 + ReLU -> dropout -> fc2.
    """

    def __init__(self, in_channels: int, num_classes: int, *, paper: bool, dropout: float) -> None:
        super().__init__()
        if paper:
            # The paper's 5x5/3 average pool gives 4x4 on the 14x14 maps of a 224 input; the
            # adaptive pool after it is then the identity, and only reshapes other input sizes.
            # (An adaptive 4x4 pool alone is NOT 5x5/3 at 14x14: its windows are 4 wide.)
            # Needs maps of at least 5x5 at 4a/4d, i.e. inputs of about 80x80 or more.
            self.pool = nn.Sequential(nn.AvgPool2d(5, stride=3), nn.AdaptiveAvgPool2d((4, 4)))
        else:
            self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, 1, bias=paper, batch_norm=not paper)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        x = torch.relu(self.fc1(x))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet; see the module docstring for input, output and the two variants.

    Submodules, in forward order: ``conv1, maxpool1, [lrn1], conv2, conv3, [lrn2], maxpool2,
    inception3a, inception3b, maxpool3, inception4a..4e, maxpool4, inception5a, inception5b,
    avgpool, dropout, fc``, and ``aux1`` (after 4a), ``aux2`` (after 4d). ``lrn1``/``lrn2`` are
    ``None`` in the torchvision variant; ``aux1``/``aux2`` are ``None`` without ``aux_logits``.
    """

    def __init__(
        self,
        variant: str = "torchvision",
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        init_weights: bool = True,
        dropout: Optional[float] = None,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown GoogLeNet variant {variant!r}; expected one of {VARIANTS}")
        paper = variant == "paper"
        if dropout is None:
            dropout = 0.4 if paper else 0.2
        self.variant = variant
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        def unit(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> BasicConv2d:
            return BasicConv2d(cin, cout, k, stride, padding, bias=paper, batch_norm=not paper)

        def lrn() -> Optional[nn.Module]:
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if paper else None

        self.conv1 = unit(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = lrn()
        self.conv2 = unit(64, 64, 1)
        self.conv3 = unit(64, 192, 3, padding=1)
        self.lrn2 = lrn()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(googlenet_spec("3a", variant))
        self.inception3b = Inception(googlenet_spec("3b", variant))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(googlenet_spec("4a", variant))
        self.inception4b = Inception(googlenet_spec("4b", variant))
        self.inception4c = Inception(googlenet_spec("4c", variant))
        self.inception4d = Inception(googlenet_spec("4d", variant))
        self.inception4e = Inception(googlenet_spec("4e", variant))
        # torchvision pools 14 -> 7 with 2x2/2; the paper uses 3x3/2 like every other stage pool.
        self.maxpool4 = nn.MaxPool2d(3 if paper else 2, stride=2, ceil_mode=True)
        self.inception5a = Inception(googlenet_spec("5a", variant))
        self.inception5b = Inception(googlenet_spec("5b", variant))

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, paper=paper, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, paper=paper, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        # Adaptive 1x1 equals the paper's 7x7 average pool at 224 input, and accepts other sizes.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.variant == "torchvision":
                    # torchvision's scheme; its bounds are absolute (±2 = ±200 std), so this is
                    # in effect normal(0, 0.01). Linear biases keep PyTorch's default, as there.
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
                else:
                    # No BN to rescale activations: He init keeps their scale through ReLUs.
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.variant == "paper":
            # The classifiers feed softmax, not ReLU: He init there gave logits of std ~6 at
            # 224 input (a large first loss); std 0.01 brings that to ~1.6.
            heads = [self.fc] + [aux.fc2 for aux in (self.aux1, self.aux2) if aux is not None]
            for fc in heads:
                nn.init.normal_(fc.weight, std=0.01)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # Per channel: ((x * std + mean) - 0.5) / 0.5, written as one multiply and one add.
        channels = [
            x[:, c : c + 1] * (std / 0.5) + (mean - 0.5) / 0.5
            for c, (mean, std) in enumerate(zip(_IMAGENET_MEAN, _IMAGENET_STD))
        ]
        return torch.cat(channels, 1)

    def stem_modules(self) -> tuple[nn.Module, ...]:
        """The stem, in the order ``forward`` runs it on the (transformed) input: conv1, maxpool1,
        [lrn1], conv2, conv3, [lrn2], maxpool2 (the LRNs in the paper variant only); its output
        ``(N, 192, H/8, W/8)`` feeds inception3a."""
        parts = (self.conv1, self.maxpool1, self.lrn1, self.conv2, self.conv3, self.lrn2, self.maxpool2)
        return tuple(m for m in parts if m is not None)

    def forward(self, x: torch.Tensor) -> Union[GoogLeNetOutputs, torch.Tensor]:
        """``(N, 3, H, W)`` -> logits ``(N, num_classes)``, or ``GoogLeNetOutputs`` in training."""
        if self.transform_input:
            x = self._transform_input(x)
        for module in self.stem_modules():
            x = module(x)

        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        # Aux heads run in training only; this order (aux1, aux2, final dropout) is also the
        # order the dropout masks are drawn in, which train-mode parity with torchvision needs.
        want_aux = self.training and self.aux_logits
        aux1 = self.aux1(x) if want_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if want_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))

        x = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(self.dropout(x))
        if want_aux:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


def googlenet(
    variant: str = "torchvision",
    *,
    aux_logits: bool = True,
    num_classes: int = 1000,
    transform_input: bool = False,
    init_weights: bool = True,
    dropout: Optional[float] = None,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """Build a GoogLeNet. ``variant`` is "paper" or "torchvision" (ValueError otherwise).

    ``dropout`` defaults to the variant's: 0.4 (paper) or 0.2 (torchvision); ``dropout_aux`` is
    the aux heads' dropout. Weights are random (``init_weights``) or PyTorch's layer defaults.
    """
    return GoogLeNet(
        variant,
        num_classes=num_classes,
        aux_logits=aux_logits,
        transform_input=transform_input,
        init_weights=init_weights,
        dropout=dropout,
        dropout_aux=dropout_aux,
    )
