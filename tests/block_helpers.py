"""Signed random inputs for parity tests. The reference blocks themselves (random parameters,
nonzero BN statistics, gamma of either sign) come from the library:
``fused_inception.models.randomize.random_block``, folded by
``fused_inception.folding.params_of_reference_block``."""

from __future__ import annotations

import torch


def random_input(shape, gen: torch.Generator) -> torch.Tensor:
    """Signed float64 input (standard normal)."""
    return torch.randn(shape, generator=gen, dtype=torch.float64)
