"""FusedInception: an nn.Module that runs an existing Inception block through the fused kernels.

It adopts the block's children under their own names, so parameter and buffer names, and hence
state_dicts, are unchanged in both directions, and ``to_module()`` gives the plain block back
(sharing the same parameters).

Modes:

* eval (and any block without BatchNorm, in training too): one ``fused_inception::inception_block``
  op. BN is folded with its running statistics. Without autograd, the folded weights are cached
  per (dtype, device) and re-folded when any parameter or buffer changes: the cache is keyed on
  each tensor's ``_version`` (bumped by every in-place op: optimizer steps, load_state_dict,
  ``copy_``), storage address, dtype and device, and keeps the storages it was built from alive
  so an address cannot be reused. Writes through ``tensor.data`` bypass version counting: call
  ``invalidate_cache()`` after those. With autograd, and while torch.compile traces, the weights
  are folded inside the graph (gradients reach the conv and BN parameters; no Python-side cache
  for the compiler to guard on).
* training with BatchNorm after every conv (torchvision's layout): batch statistics need every
  conv's whole output before it can be normalised, which splits the fusion apart at each BN. The
  block runs as the ``fused_inception::inception_block_bn_train`` op (fused_inception.bn_train):
  the unfused sequence on cuDNN, updating running_mean, running_var and num_batches_tracked
  exactly as nn.BatchNorm2d, but saving only the input, the output's ReLU mask and the batch
  statistics, and recomputing the rest in backward.
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
        self._cache: tuple[tuple, list, InceptionParams] | None = None
        # a new Module starts in training mode: take the block's (not .train(), which would also
        # reset children that are deliberately in the other mode, e.g. frozen BN)
        self.training = block.training

    @classmethod
    def from_module(cls, block: nn.Module, match: InceptionMatch | None = None) -> "FusedInception":
        """Wrap ``block``; raises fused_inception.matching.NotInception if it is not Inception-shaped."""
        return cls(block, match if match is not None else match_inception(block))

    def to_module(self) -> nn.Module:
        """The original block, with the current weights (it shares this module's parameters and
        children, so the children's modes are already current; only its own flag may lag)."""
        self._block.training = self.training
        return self._block

    def invalidate_cache(self) -> None:
        """Drop the cached folded weights (needed only after writes through ``tensor.data``)."""
        self._cache = None

    def extra_repr(self) -> str:
        return f"fused={type(self._block).__name__}, relu={self.match.relu}"

    def _units(self) -> dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
        units = {}
        for name in UNIT_NAMES:
            ref = self.match.units[name]
            units[name] = (self.get_submodule(ref.conv), self.get_submodule(ref.bn) if ref.bn else None)
        return units

    def _state(self) -> tuple[tuple, list]:
        """(cache key, the storages behind it) over every parameter and buffer of the block."""
        tensors = [t for _, t in self._block.named_parameters()] + [t for _, t in self._block.named_buffers()]
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        return key, [t.untyped_storage() for t in tensors]

    def folded_params(self, dtype: torch.dtype, device: torch.device) -> InceptionParams:
        """Folded weights in kernel layout; cached unless autograd or the compiler needs them
        folded inside the graph."""
        units = self._units()
        needs_graph = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        if needs_graph or torch.compiler.is_compiling():
            # folded again every call, inside the graph: float32 keeps that cheap
            return params_from_units(units, self.match.relu, dtype, self.match.cat_order, fold_dtype=torch.float32)
        key, storages = self._state()
        key = (dtype, device) + key
        if self._cache is None or self._cache[0] != key:
            # normal tensors even under inference_mode: a later autograd forward may save them
            with torch.inference_mode(False), torch.no_grad():
                params = params_from_units(units, self.match.relu, dtype, self.match.cat_order)
            self._cache = (key, storages, params)
        return self._cache[2]

    def forward(self, x: Tensor) -> Tensor:
        check_input_shape(x, self.get_submodule(self.match.units["branch1"].conv).in_channels)
        bns = [ref.bn is not None for ref in self.match.units.values()]
        if self.training and any(bns):
            return self._forward_bn_train(x) if all(bns) else self._block(x)
        dtype = self._compute_dtype(x)
        x = x.to(dtype)
        params = self.folded_params(dtype, x.device)
        return inception_block(x, *op_arguments(params))

    def _compute_dtype(self, x: Tensor) -> torch.dtype:
        """The autocast dtype under autocast; else x's, which must match the weights' (as a conv
        with mismatched input and weight dtypes raises)."""
        if torch.is_autocast_enabled(x.device.type):
            return torch.get_autocast_dtype(x.device.type)
        weight = self.get_submodule(self.match.units["branch1"].conv).weight
        if x.dtype != weight.dtype:
            raise TypeError(f"input dtype {x.dtype} does not match the weights' dtype {weight.dtype}")
        return x.dtype

    def _forward_bn_train(self, x: Tensor) -> Tensor:
        """Training with batch statistics (see the module docstring)."""
        dtype = self._compute_dtype(x)
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

