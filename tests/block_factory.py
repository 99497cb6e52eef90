"""Random reference Inception blocks for parity tests.

Weights, biases, BN running statistics and BN affine parameters are all random and nonzero (gamma
may be negative), so BN folding, zero padding of the reduced tensor and -inf padding of the
max-pool are all exercised; inputs are signed.
"""

from __future__ import annotations

import torch

from fused_inception.folding import params_from_units, units_of_reference_block
from fused_inception.models import Inception
from fused_inception.spec import InceptionSpec


def random_block(spec: InceptionSpec, gen: torch.Generator) -> Inception:
    """A float64 eval-mode reference block with random parameters and BN statistics."""
    block = Inception(spec).double().eval()
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen, dtype=torch.float64)
                                    * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen, dtype=torch.float64) * 0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
                module.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) * 1.5 + 0.25)
                module.weight.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
                module.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
    return block


def fused_params(block: Inception, dtype: torch.dtype):
    """The block's folded InceptionParams in ``dtype``."""
    with torch.no_grad():
        return params_from_units(units_of_reference_block(block), relu=block.spec.relu, dtype=dtype)


def random_input(shape, gen: torch.Generator) -> torch.Tensor:
    """Signed float64 input (standard normal)."""
    return torch.randn(shape, generator=gen, dtype=torch.float64)
