"""Random parameters for parity checks and benchmarks, so that BN folding and both paddings are
really exercised (default inits leave BN an identity and the logits nearly independent of the
input): ``randomize_`` (any model, in place), ``randomize_block_`` (one Inception block, signed BN
scales) and ``random_googlenet`` (a whole network whose BN statistics are measured on a batch, so
activations keep their scale through the depth)."""

from __future__ import annotations

import torch
from torch import nn

from ..spec import InceptionSpec
from .googlenet import googlenet
from .inception import Inception

# images run through a random_googlenet to measure its BN running statistics
CALIBRATION_BATCH = 4


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


def random_block(spec: InceptionSpec, gen: torch.Generator) -> Inception:
    """A float64 eval-mode reference ``Inception(spec)`` with randomize_block_'s parameters and
    BN statistics (the block parity checks, tests and the tuner compare against)."""
    return randomize_block_(Inception(spec).double().eval(), gen)


def randomize_block_(block: nn.Module, gen: torch.Generator) -> nn.Module:
    """Random parameters and BN running statistics, in place, for a parity check of one block.

    Conv weights He-normal, biases N(0, 0.5^2); BN running_mean N(0, 0.5^2), running_var in
    [0.25, 1.75), gamma N(0, 1) (either sign), beta N(0, 0.5^2).
    """
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.Conv2d):
                _random_conv_(m, gen, bias_std=0.5)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(_randn((c,), gen, m.running_mean) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) * 1.5 + 0.25)
                if m.weight is not None:
                    m.weight.copy_(_randn((c,), gen, m.weight))
                    m.bias.copy_(_randn((c,), gen, m.bias) * 0.5)
    return block


def random_googlenet(variant: str, gen: torch.Generator, size: int, *, aux_logits: bool = True,
                     dtype: torch.dtype = torch.float64) -> nn.Module:
    """A GoogLeNet with random weights and nonzero BN statistics, in eval mode, on the CPU.

    Convs are He-normal (biases of the paper variant N(0, 0.1^2)); every BatchNorm gets gamma in
    [0.5, 1.5), beta N(0, 0.2^2) and running statistics measured on a batch of signed random
    inputs of ``size`` x ``size`` (so activations keep their scale through the network and the
    running means and variances are nonzero). Linear layers keep PyTorch's default init.
    """
    model = googlenet(variant, aux_logits=aux_logits).to(dtype)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                _random_conv_(m, gen, bias_std=0.1)
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen, dtype=torch.float64) + 0.5)
            bn.bias.copy_(_randn((bn.num_features,), gen, bn.bias) * 0.2)
        if bns:
            # running statistics = one batch's statistics (momentum None: cumulative average)
            momenta = [bn.momentum for bn in bns]
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
            model.train()
            model(_randn((CALIBRATION_BATCH, 3, size, size), gen, next(model.parameters())))
            for bn, momentum in zip(bns, momenta):
                bn.momentum = momentum
                bn.num_batches_tracked.zero_()
    return model.eval()


def _random_conv_(conv: nn.Conv2d, gen: torch.Generator, bias_std: float) -> None:
    """He-normal weight, bias N(0, bias_std^2) if there is one (draws in this order)."""
    _he_normal_(conv, gen)
    if conv.bias is not None:
        conv.bias.copy_(_randn(conv.bias.shape, gen, conv.bias) * bias_std)


def _randn(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64).to(like.dtype)


def _he_normal_(conv: nn.Conv2d, gen: torch.Generator) -> None:
    fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
    conv.weight.copy_(_randn(conv.weight.shape, gen, conv.weight) * (2.0 / fan_in) ** 0.5)
