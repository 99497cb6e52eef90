"""From nn modules to InceptionParams: fold each (Conv2d, BatchNorm2d) unit of a block.

A block is described by its six conv units, keyed ``branch1``, ``reduce3``, ``conv3``,
``reduce5``, ``conv5``, ``pool_proj``: each a (conv, bn-or-None) pair, the bn an nn.BatchNorm2d or a
torchvision FrozenBatchNorm2d. Eval-mode BatchNorm (running statistics) is folded into the conv's
weight and bias.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .params import InceptionParams, fold_batch_norm

UNIT_NAMES = ("branch1", "reduce3", "conv3", "reduce5", "conv5", "pool_proj")

ConvUnit = tuple[nn.Conv2d, "nn.Module | None"]  # the module: nn.BatchNorm2d or FrozenBatchNorm2d


def fold_conv_unit(conv: nn.Conv2d, bn: nn.Module | None,
                   compute_dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [C_out, C_in, k, k], bias [C_out]) of conv followed by eval-mode ``bn``, in float32
    (float64 for float64 weights, so that a float64 model computes in float64).

    Differentiable with respect to the modules' parameters; use torch.no_grad() for a cache.
    ``compute_dtype``: the precision of the fold arithmetic.
    """
    # each attribute read once: a parametrized weight computes on every read, and the conv's own
    # forward reads it once
    weight, bias = conv.weight, conv.bias
    if bn is None:
        out_dtype = torch.promote_types(weight.dtype, torch.float32)
        bias = bias.to(out_dtype) if bias is not None else torch.zeros(
            conv.out_channels, dtype=out_dtype, device=weight.device)
        return weight.to(out_dtype), bias
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics (track_running_stats=False)")
    return fold_batch_norm(weight, bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps,
                           compute_dtype)


def in_call_fold_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of a fold made again in every call (autograd, the compiler or a
    parametrization needs it inside the graph), for compute ``dtype``: float32 for the kernels'
    dtypes, which keeps a per-step fold cheap; float64 for float64, which a float32 fold would
    round to float32 (a float64 model is the float64 reference gradients are checked against)."""
    return torch.promote_types(dtype, torch.float32)


def check_units(units: Mapping[str, ConvUnit]) -> None:
    """ValueError unless ``units`` has every one of UNIT_NAMES."""
    missing = [name for name in UNIT_NAMES if name not in units]
    if missing:
        raise ValueError(f"missing conv units {missing}; expected {list(UNIT_NAMES)}")


def params_from_units(units: Mapping[str, ConvUnit], relu: bool, dtype: torch.dtype,
                      cat_order: tuple[str, str, str, str] | None = None,
                      fold_dtype: torch.dtype = torch.float64) -> InceptionParams:
    """Fold the six conv units of a block into InceptionParams with weights in ``dtype``
    (the BN fold computed in ``fold_dtype``)."""
    check_units(units)
    folded = [fold_conv_unit(*units[name], compute_dtype=fold_dtype) for name in UNIT_NAMES]
    return InceptionParams.from_conv_weights(*folded, relu=relu, dtype=dtype, cat_order=cat_order)


def units_of_reference_block(block: nn.Module) -> dict[str, ConvUnit]:
    """The conv units of a ``fused_inception.models.Inception`` (torchvision's layout of names)."""
    def unit(m: nn.Module) -> ConvUnit:
        return (m.conv, getattr(m, "bn", None))

    return {
        "branch1": unit(block.branch1),
        "reduce3": unit(block.branch2[0]),
        "conv3": unit(block.branch2[1]),
        "reduce5": unit(block.branch3[0]),
        "conv5": unit(block.branch3[1]),
        "pool_proj": unit(block.branch4[1]),
    }


def params_of_reference_block(block: nn.Module, dtype: torch.dtype) -> InceptionParams:
    """A ``fused_inception.models.Inception``'s folded InceptionParams with weights in ``dtype``."""
    with torch.no_grad():
        return params_from_units(units_of_reference_block(block), relu=block.spec.relu, dtype=dtype)
