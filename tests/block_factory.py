"""Random reference Inception blocks for parity tests.

Weights, biases, BN running statistics and BN affine parameters are all random and nonzero (gamma
may be negative), so BN folding, zero padding of the reduced tensor and -inf padding of the
max-pool are all exercised; inputs are signed.
"""

from __future__ import annotations

import torch

from fused_inception.folding import params_from_units, units_of_reference_block
from fused_inception.models import Inception
from fused_inception.models.randomize import randomize_block_
from fused_inception.spec import InceptionSpec


def random_block(spec: InceptionSpec, gen: torch.Generator) -> Inception:
    """A float64 eval-mode reference block with random parameters and BN statistics."""
    return randomize_block_(Inception(spec).double().eval(), gen)


def fused_params(block: Inception, dtype: torch.dtype):
    """The block's folded InceptionParams in ``dtype``."""
    with torch.no_grad():
        return params_from_units(units_of_reference_block(block), relu=block.spec.relu, dtype=dtype)


def random_input(shape, gen: torch.Generator) -> torch.Tensor:
    """Signed float64 input (standard normal)."""
    return torch.randn(shape, generator=gen, dtype=torch.float64)
