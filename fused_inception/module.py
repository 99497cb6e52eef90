"""FusedInception: an nn.Module that runs an existing Inception block through the fused kernels.

It adopts the block's children under their own names, so parameter and buffer names, and hence
state_dicts, are unchanged in both directions, and ``to_module()`` gives the plain block back
(sharing the same parameters).

Modes:

* eval (and any block without BatchNorm, in training too): one ``fused_inception::inception_block``
  op. BN is folded with its running statistics. Without autograd, the folded weights are cached
  per (dtype, device) and re-folded when any parameter or buffer changes (tensor ``_version``,
  storage and device), so they are never stale after an optimizer step or load_state_dict. With
  autograd, they are folded inside the graph so gradients reach the conv and BN parameters.
* training with BatchNorm after every conv (torchvision's layout): batch statistics need every
  conv's whole output before it can be normalised, which splits the fusion apart at each BN. The
  block runs as the ``fused_inception::inception_block_bn_train`` op (fused_inception.bn_train):
  the unfused sequence on cuDNN, updating running_mean, running_var and num_batches_tracked
  exactly as nn.BatchNorm2d, but saving only the input, the output and the batch statistics, and
  recomputing the rest in backward.
* training with BatchNorm on some convs only: the block's original modules.
"""

from __future__ import annotations

import torch
from torch import nn

from .bn_train import inception_block_bn_train
from .folding import UNIT_NAMES, params_from_units
from .library import inception_block, op_arguments
from .matching import InceptionMatch, match_inception
from .ops import check_input_shape
from .params import CAT_ORDER, InceptionParams

Tensor = torch.Tensor


class FusedInception(nn.Module):
    """Drop-in replacement for an Inception-shaped block: ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, block: nn.Module, match: InceptionMatch) -> None:
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)
        for name, param in block.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, buf in block.named_buffers(recurse=False):
            self.register_buffer(name, buf)
        # the plain block, not registered (its children are ours already): unfuse returns it
        object.__setattr__(self, "_block", block)
        self.match = match
        self._cache: tuple[tuple, InceptionParams] | None = None
        self.train(block.training)  # a new Module starts in training mode; keep the block's

    @classmethod
    def from_module(cls, block: nn.Module, match: InceptionMatch | None = None) -> "FusedInception":
        """Wrap ``block``; raises fused_inception.matching.NotInception if it is not Inception-shaped."""
        return cls(block, match if match is not None else match_inception(block))

    def to_module(self) -> nn.Module:
        """The original block, with the current weights (it shares this module's parameters)."""
        self._block.train(self.training)
        return self._block

    def extra_repr(self) -> str:
        return f"fused={type(self._block).__name__}, relu={self.match.relu}"

    def _units(self) -> dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
        units = {}
        for name in UNIT_NAMES:
            ref = self.match.units[name]
            units[name] = (self.get_submodule(ref.conv), self.get_submodule(ref.bn) if ref.bn else None)
        return units

    def _state_key(self, dtype: torch.dtype, device: torch.device) -> tuple:
        tensors = [t for _, t in self._block.named_parameters()] + [t for _, t in self._block.named_buffers()]
        return (dtype, device) + tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)

    def folded_params(self, dtype: torch.dtype, device: torch.device) -> InceptionParams:
        """Folded weights in kernel layout; cached unless autograd needs them in its graph."""
        units = self._units()
        needs_graph = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        if needs_graph:
            # folded again every call, inside the graph: float32 keeps that cheap
            return params_from_units(units, self.match.relu, dtype, self.match.cat_order, fold_dtype=torch.float32)
        key = self._state_key(dtype, device)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                params = params_from_units(units, self.match.relu, dtype, self.match.cat_order)
            self._cache = (key, params)
        return self._cache[1]

    def forward(self, x: Tensor) -> Tensor:
        check_input_shape(x, self.get_submodule(self.match.units["branch1"].conv).in_channels)
        bns = [ref.bn is not None for ref in self.match.units.values()]
        if self.training and any(bns):
            return self._forward_bn_train(x) if all(bns) else self._block(x)
        dtype = x.dtype
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            x = x.to(dtype)
        params = self.folded_params(dtype, x.device)
        return inception_block(x, *op_arguments(params))

    def _forward_bn_train(self, x: Tensor) -> Tensor:
        """Training with batch statistics (see the module docstring)."""
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        x = x.to(dtype)
        units = self._units()
        convs = [units[name][0] for name in UNIT_NAMES]
        bns = [units[name][1] for name in UNIT_NAMES]
        momentums = []
        for bn in bns:
            bn.num_batches_tracked.add_(1)
            momentums.append(1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum)
        out, _, _, new_means, new_vars = inception_block_bn_train(
            x,
            [c.weight.to(dtype) for c in convs],
            [c.bias.to(dtype) if c.bias is not None else x.new_zeros(c.out_channels) for c in convs],
            [bn.weight if bn.weight is not None else x.new_ones(bn.num_features, dtype=torch.float32) for bn in bns],
            [bn.bias if bn.bias is not None else x.new_zeros(bn.num_features, dtype=torch.float32) for bn in bns],
            [bn.running_mean for bn in bns], [bn.running_var for bn in bns],
            momentums, [bn.eps for bn in bns], self.match.relu,
            [CAT_ORDER.index(name) for name in self.match.cat_order],
        )
        with torch.no_grad():
            sizes = [bn.num_features for bn in bns]
            for bn, mean, var in zip(bns, new_means.split(sizes), new_vars.split(sizes)):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
        return out

