"""Hooks a fused launch would skip, and the warning a fused block gives when it runs its original
modules instead.

``FusedInception`` computes its six conv units in a few kernel launches, so no inner module's
``__call__`` runs: a hook on an inner module (``torch.nn.utils.prune``, the hook-based
``weight_norm``/``spectral_norm`` and user hooks are all forward pre-hooks or hooks), a hook on the
original block object, or a global module hook would silently not fire. Hooks on the
``FusedInception`` itself do fire (its own ``__call__`` runs them).
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules import module as nn_module

# (attribute of every nn.Module, what it holds)
_KINDS = (("_forward_pre_hooks", "forward pre-hook"), ("_forward_hooks", "forward hook"),
          ("_backward_pre_hooks", "backward pre-hook"), ("_backward_hooks", "backward hook"))
# (attribute of torch.nn.modules.module, what it holds): register_module_forward_hook and kin
_GLOBAL_KINDS = (("_global_forward_pre_hooks", "global forward pre-hook"),
                 ("_global_forward_hooks", "global forward hook"),
                 ("_global_backward_pre_hooks", "global backward pre-hook"),
                 ("_global_backward_hooks", "global backward hook"))


class FusedFallbackWarning(UserWarning):
    """A fused block or stem unit ran its original modules for a call (hooks present); the result is exact,
    only not fused."""


def _hook_name(hook) -> str:
    # prune methods, WeightNorm, SpectralNorm: objects whose class says what they are
    return getattr(hook, "__qualname__", None) or type(hook).__name__


def has_hooks(modules: list[nn.Module]) -> bool:
    """Whether any hook would fire when a block whose modules are ``modules`` (the block itself
    and every module under it) runs them. Runs on every fused call, so it spells out the
    attributes of _KINDS and _GLOBAL_KINDS and builds no strings."""
    if (nn_module._global_forward_pre_hooks or nn_module._global_forward_hooks
            or nn_module._global_backward_pre_hooks or nn_module._global_backward_hooks):
        return True
    return any(m._forward_pre_hooks or m._forward_hooks or m._backward_pre_hooks or m._backward_hooks
               for m in modules)


def describe_hooks(block: nn.Module) -> list[str]:
    """One line per hook that would fire when ``block`` runs, e.g.
    ``"forward pre-hook L1Unstructured on 'branch1.conv'"``; empty when there is none."""
    found = [f"{kind} {_hook_name(hook)}" for attr, kind in _GLOBAL_KINDS
             for hook in getattr(nn_module, attr).values()]
    for name, module in block.named_modules():
        where = f"{name!r}" if name else "the block itself"
        found += [f"{kind} {_hook_name(hook)} on {where}" for attr, kind in _KINDS
                  for hook in getattr(module, attr).values()]
    return found
