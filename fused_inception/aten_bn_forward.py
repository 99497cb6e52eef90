"""The aten-bn tactic of one fused Inception block: its BatchNorms kept, the rest merged, for training.

The aten tactic folds BN with its running statistics, so it cannot train BN with batch
statistics, and on the autograd path its gradients reach gamma through the fold (docs/DESIGN.md:
the fold's cancellation). This tactic keeps every BatchNorm a BatchNorm (batch statistics for a BN
in training, running statistics for one in eval or a FrozenBatchNorm2d) and merges what the
block's modules run apart:

* the three 1x1 convs that read the block input run as ONE conv2d (weights concatenated along
  C_out: branch 1, reduce3, reduce5), so the input is read once forward and once backward, and
  their input gradients come out of one GEMM already summed;
* their three BatchNorms run as ONE batch_norm over the concatenated channels (BN is per channel,
  so this is the same arithmetic) whenever the three normalise alike: same mode, eps, running-average
  factor, and affine or not; then one in-place ReLU;
* the k3 x k3 and k5 x k5 convs read their channel slice; the 3x3/1 max-pool (-inf padding)
  feeds the pool projection; each of those three keeps its own BatchNorm;
* the four results are concatenated in ``cat_order`` into ``block_io.output_memory_format(x)``;
  on the CPU all of it computes in channels_last (``block_io.aten_compute_layout``).

Autograd differentiates it (nothing is recomputed): it keeps about what the unfused block keeps
for backward, where the BN-training op (bn_train.py) keeps less and recomputes.

Side effects, as the block's own BatchNorms have them: a BN in training with
``track_running_stats`` adds one to ``num_batches_tracked`` and moves ``running_mean`` and
``running_var`` by its factor (``momentum``, or 1 / num_batches_tracked for ``momentum=None``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .block_io import aten_compute_layout, check_input_shape, output_memory_format
from .bn_train import running_average_factor
from .folding import UNIT_NAMES, ConvUnit, check_units

Tensor = torch.Tensor


@dataclass(frozen=True)
class _Norm:
    """How one unit's BatchNorm normalises in this call (None for a unit without BN).

    ``batch_stats``: batch statistics (a BN in training) or running ones; ``update``: the running
    statistics move (training with track_running_stats); ``factor``: their running-average factor
    this call (0 without update); ``eps``; ``affine``: gamma and beta present."""

    batch_stats: bool
    update: bool
    factor: float
    eps: float
    affine: bool


def _norm_of(bn: nn.Module, affine: bool) -> _Norm:
    """The _Norm of ``bn`` (with gamma and beta when ``affine``) for one call, counting the call in
    ``num_batches_tracked`` as nn.BatchNorm2d.forward does (so call it once per call)."""
    training = isinstance(bn, nn.BatchNorm2d) and bn.training
    update = training and bn.track_running_stats and bn.running_mean is not None
    factor = running_average_factor(bn) if update else 0.0
    return _Norm(training, update, factor, float(bn.eps), affine)


def _batch_norm(y: Tensor, bns: Sequence[nn.Module], affines: Sequence[tuple[Tensor, Tensor]], norm: _Norm) -> Tensor:
    """One F.batch_norm over ``y``'s channels, the concatenation of ``bns``' channels, all of which
    normalise as ``norm``, with their (gamma, beta) ``affines`` as read once this call; writes the
    moved running statistics back into each BN."""
    def cat(tensors: list[Tensor]) -> Tensor:
        return tensors[0] if len(tensors) == 1 else torch.cat(tensors)

    # a training BN without track_running_stats normalises with batch statistics and leaves its
    # buffers alone, as nn.BatchNorm2d does
    uses_running = not norm.batch_stats or norm.update
    mean, var = ((cat([bn.running_mean for bn in bns]), cat([bn.running_var for bn in bns])) if uses_running
                 else (None, None))
    gamma, beta = (cat([g for g, _ in affines]), cat([b for _, b in affines])) if norm.affine else (None, None)
    out = F.batch_norm(y, mean, var, gamma, beta, norm.batch_stats, norm.factor, norm.eps)
    if norm.update and len(bns) > 1:
        with torch.no_grad():
            sizes = [bn.running_mean.numel() for bn in bns]
            for bn, m, v in zip(bns, mean.split(sizes), var.split(sizes)):
                bn.running_mean.copy_(m)
                bn.running_var.copy_(v)
    return out


def _normalise(y: Tensor, bns: Sequence[nn.Module], affines: Sequence[tuple[Tensor, Tensor]],
               norms: Sequence[_Norm], sizes: Sequence[int]) -> Tensor:
    """``y`` (channels: ``bns``' units side by side, ``sizes`` of them each, each unit with a BN)
    through its units' BatchNorms: one call when they all normalise alike, else one per unit."""
    if len(set(norms)) == 1:
        return _batch_norm(y, bns, affines, norms[0])
    parts = y.split(list(sizes), dim=1)
    return torch.cat([_batch_norm(p, [bn], [a], n) for p, bn, a, n in zip(parts, bns, affines, norms)], dim=1)


def aten_bn_forward(x: Tensor, units: Mapping[str, ConvUnit], relu: bool,
                    cat_order: tuple[str, str, str, str]) -> Tensor:
    """One Inception block on aten ops with its BatchNorms kept (module docstring).

    x: [N, C_in, H, W], any strides, in the compute dtype (the convs' weights are cast to it).
    ``units``: the six (conv, bn-or-None) units keyed folding.UNIT_NAMES, with BN on all six or
    none; each conv a stride-1 "same" conv. Returns a new [N, C_out, H, W] tensor, the branches in
    ``cat_order``, in ``block_io.output_memory_format(x)``; differentiable by autograd with respect
    to ``x`` and every conv and BN parameter. Moves the running statistics of BNs in training.
    """
    check_units(units)
    has_bn = [units[name][1] is not None for name in UNIT_NAMES]
    if any(has_bn) and not all(has_bn):
        raise ValueError("the aten-bn tactic needs a BatchNorm on all six convs or on none")
    check_input_shape(x, units["branch1"][0].in_channels)
    out_format = output_memory_format(x)
    x = aten_compute_layout(x)
    dtype = x.dtype
    # each attribute read once per call: a parametrized weight computes on every read, and the
    # conv's own forward reads it once
    conv = {}
    for name in UNIT_NAMES:
        c = units[name][0]
        weight, bias = c.weight, c.bias
        conv[name] = (weight.to(dtype), bias.to(dtype) if bias is not None else None)
    bns = {name: units[name][1] for name in UNIT_NAMES}
    # gamma and beta read once too (a parametrized BN weight computes on every read)
    affines = {name: (bn.weight, bn.bias) for name, bn in bns.items() if bn is not None}
    norms = {name: _norm_of(bn, affines[name][0] is not None) for name, bn in bns.items() if bn is not None}

    def act(t: Tensor) -> Tensor:
        # in place: t is a fresh result nothing else holds (ReLU's backward reads its output)
        return t.relu_() if relu else t

    def unit(name: str, inp: Tensor) -> Tensor:
        w, b = conv[name]
        y = F.conv2d(inp, w, b, padding=w.shape[-1] // 2)
        if bns[name] is None:
            return act(y)
        return act(_normalise(y, [bns[name]], [affines[name]], [norms[name]], [w.shape[0]]))

    merged = ("branch1", "reduce3", "reduce5")
    w_in = torch.cat([conv[name][0] for name in merged])
    biases = [conv[name][1] for name in merged]
    b_in = None if all(b is None for b in biases) else torch.cat(
        [b if b is not None else w_in.new_zeros(conv[name][0].shape[0]) for name, b in zip(merged, biases)])
    sizes = [conv[name][0].shape[0] for name in merged]
    y = F.conv2d(x, w_in, b_in)
    if bns["branch1"] is not None:
        y = _normalise(y, [bns[name] for name in merged], [affines[name] for name in merged],
                       [norms[name] for name in merged], sizes)
    branch1, red3, red5 = act(y).split(sizes, dim=1)
    results = {
        "branch1": branch1,
        "conv3": unit("conv3", red3),
        "conv5": unit("conv5", red5),
        "pool_proj": unit("pool_proj", F.max_pool2d(x, 3, 1, 1)),
    }
    out = torch.cat([results[name] for name in cat_order], dim=1)
    return out.contiguous(memory_format=out_format)
