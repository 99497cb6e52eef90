"""FusedInception: an nn.Module that runs an existing Inception block through the fused kernels.

It adopts the block's children under their own names, so parameter and buffer names, and hence
state_dicts, are unchanged in both directions, and ``to_module()`` gives the plain block back
(sharing the same parameters).

Tactics — each call runs one implementation of the block (``tactics``: same numerics contract),
chosen per call by ``selection.choose_tactic`` from the call's device, dtype, batch, memory format
and mode and, on a GPU, the winner its tuned file records (``tactics.select_tactic`` has the
rules; a GPU without a record warns once per process, ``selection.UntunedGPUWarning``):

* ``triton``: the ``fused_inception::inception_block`` op below (the fused kernels; on a CPU
  without the Triton interpreter the op computes with aten ops), or in BN training the
  BN-training op;
* ``aten``: ``aten_forward.aten_inception_forward`` (BN folded, the three input 1x1 convs as one
  conv, PyTorch's own convs); its conv-layout weights are cached beside the folded weights (rules
  below), and folded inside the call (``aten_weights_from_units``) where those are; in BN training
  the BN-training op;
* ``aten-bn``: ``aten_bn_forward.aten_bn_forward`` (every BatchNorm kept, in its own mode; the
  three input 1x1 convs as one conv and their BNs as one): any mode, meant for the training ones;
* ``modules``: the block's original modules.

``last_tactic`` holds the (tactic, reason) of the latest eager call; ``record_paths()`` records the
path each call takes.

Modes — each BatchNorm's own ``training`` flag decides for its conv unit, as in nn.BatchNorm2d:

* no unit normalises with batch statistics (every BN in eval, FrozenBatchNorm2d, or no BN; the
  block itself may be training, as in frozen-BN fine-tuning; tactics' mode "inference" without
  autograd, "frozen-bn-training" with it): one ``fused_inception::inception_block`` op (or the aten
  tactic), BN folded with its running statistics; or the aten-bn tactic (the CPU's default in
  frozen-BN training), BN kept in eval. No buffer changes. Without autograd, the folded
  weights are cached per (dtype, device) and re-folded when any parameter or buffer changes: the
  cache is keyed on each tensor's ``_version`` (bumped by every in-place op: optimizer steps,
  load_state_dict, ``copy_``), data address and dtype (a tensor moved to another device has
  another address), and keeps the storages it was built from alive so an address cannot be reused. Writes through ``tensor.data`` bypass version
  counting: call ``invalidate_cache()`` after those. With autograd, while torch.compile traces, and
  while a conv or BN is parametrized (``torch.nn.utils.parametrize``: weight_norm, spectral_norm,
  ...), the weights are folded inside the call instead, each parametrized weight read exactly once
  per call as the conv's own forward reads it (gradients reach the conv and BN parameters).
* some unit's BN in training (batch statistics), and every unit has a BN (mode "bn-training";
  tactic ``triton`` or ``aten``): the block runs as the
  ``fused_inception::inception_block_bn_train`` op (fused_inception.bn_train) with each unit in its
  own BN's mode, on cuDNN; running_mean, running_var and num_batches_tracked change exactly as
  nn.BatchNorm2d changes them (momentum=None is the cumulative average; ``track_running_stats=False``
  set after fusing normalises with batch statistics and leaves the buffers alone). It saves only the
  input, the output's ReLU mask and the normalising statistics, and recomputes the rest in backward.
* batch statistics with BN on some convs only, or a BN whose running statistics were set to None
  after fusing: the block's original modules (exact, not fused).
* hooks that a fused launch would skip (fused_inception.hooks: on an inner module or the original
  block object, including ``torch.nn.utils.prune`` and the hook-based weight_norm/spectral_norm,
  or global module hooks): the original modules run for that call, so every hook fires as in the
  plain block, with one ``FusedFallbackWarning`` per call. Hooks on the FusedInception itself run
  as on any module.

Serialization: pickling, ``torch.save`` of the whole module and ``copy.deepcopy`` leave the folded
weight cache out (it is rebuilt on the first call; ``has_cached_weights`` tells); state_dicts hold
exactly the block's entries.

Observing the dispatch: ``record_paths()`` records which of these paths each call takes
("fused", "aten", "aten_bn", "bn_train" or "modules"); ``last_tactic`` says which tactic and why;
``forward.count_launches()`` counts the kernel launches.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from .aten_bn_forward import aten_bn_forward
from .aten_forward import AtenWeights, aten_inception_forward, aten_weights, aten_weights_from_units
from .block_io import check_input_shape, kernel_compute_layout, output_memory_format
from .bn_train import inception_block_bn_train, running_average_factor
from .custom_op import inception_block, op_arguments
from .folding import UNIT_NAMES, in_call_fold_dtype, params_from_units
from .hooks import FusedFallbackWarning, describe_hooks, has_hooks
from .matching import InceptionMatch, match_inception
from .params import CAT_ORDER, InceptionParams
from .selection import block_shape, call_mode, choose_tactic
from .tactics import ATEN, ATEN_BN, BN_TRAINING, MODULES, Choice
from .thread_stacks import ThreadStack

Tensor = torch.Tensor

# the paths a FusedInception call can take (the module docstring says when each is taken)
PATHS = ("fused", "aten", "aten_bn", "bn_train", "modules")

# the lists record_paths fills in each thread (innermost last)
_recording = ThreadStack()


@contextlib.contextmanager
def record_paths() -> Iterator[list[tuple[str, torch.dtype]]]:
    """Record the path each FusedInception call of this thread takes inside the ``with`` block::

        with record_paths() as calls:
            model(x)
        assert calls == [("fused", torch.float32)] * 9

    Each call appends ``(path, compute dtype)``: ``"fused"`` (the folded
    ``fused_inception::inception_block`` op: tactic triton), ``"aten"`` (the aten tactic with
    folded BN), ``"aten_bn"`` (the aten-bn tactic: BatchNorms kept), ``"bn_train"`` (the
    ``fused_inception::inception_block_bn_train`` op: BN training on tactic triton or aten) or
    ``"modules"`` (the block's original modules, tactic modules or a
    fallback; the input's dtype). Nested blocks each record.
    """
    calls: list[tuple[str, torch.dtype]] = []
    with _recording.pushed(calls):
        yield calls


def _note_path(path: str, dtype: torch.dtype) -> None:
    for calls in _recording.items():
        calls.append((path, dtype))


class FusedInception(nn.Module):
    """Drop-in replacement for an Inception-shaped block: ``(N, C_in, H, W) -> (N, C_out, H, W)``.

    Args:
        block: the Inception-shaped module to run fused; its children (and hence its parameters
            and buffers) are adopted under their own names, not copied.
        match: where its six conv units are (``matching.match_inception(block)``);
            ``FusedInception.from_module(block)`` finds it.

    Calling it (``forward(x)``):
        x: ``[N, C_in, H, W]`` (NCHW or channels_last) in the weights' dtype, or any dtype under
        autocast. Returns ``[N, C_out, H, W]`` in the input's memory format (the branches in the
        block's concatenation order), computed in the mode the block's BNs are in (module
        docstring).

    Raises:
        ``matching.NotInception`` (``from_module``) when ``block`` is not Inception-shaped, with
        the reason. On call: TypeError for a non-tensor input or a dtype that differs from the
        weights'; ValueError for an input that is not 4-D or has other than C_in channels, or is
        too large for the kernels' int32 indices.

    Threads: one model may serve inference (eval BNs, or ``requires_grad_(False)``/no_grad) from
    many threads at once; the folded-weight cache is replaced as a whole, never changed in place,
    so a thread sees either the old or the new complete entry (threads that miss together each
    fold once). Kernels launch concurrently on CUDA; under Triton's interpreter (CPU) they take
    turns, as the interpreter keeps the running kernel's state in globals. Not thread-safe, as for
    any nn.Module: training-mode BN (the running statistics
    and ``num_batches_tracked`` are updated in place, as nn.BatchNorm2d does), and changing
    weights, modes, hooks or parametrizations while another thread runs the model.
    """

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
        # (key, storages, folded params, their AtenWeights or None until the aten tactic needs them)
        self._cache: tuple[tuple, list, InceptionParams, AtenWeights | None] | None = None
        self.last_tactic: tuple[str, str] | None = None
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

    @property
    def has_cached_weights(self) -> bool:
        """Whether folded weights are cached (built by an inference call, dropped by copies,
        pickles and ``invalidate_cache``; see the module docstring)."""
        return self._cache is not None

    def invalidate_cache(self) -> None:
        """Drop the cached folded weights (needed only after writes through ``tensor.data``)."""
        self._cache = None

    def __getstate__(self) -> dict:
        # the cache is derived data holding views of the parameters' storages in other dtypes
        # (which torch.save refuses): pickles and deep copies rebuild it on their first call
        state = super().__getstate__()
        state["_cache"] = None
        return state

    def extra_repr(self) -> str:
        return f"fused={type(self._block).__name__}, relu={self.match.relu}"

    def _modules_now(self) -> list[nn.Module]:
        """The modules a call reads: the original block object (hooks on it count) and, below it,
        this module's children (those the conv units are looked up in, so a child replaced on the
        FusedInception counts). Walked straight through the modules' dicts: this runs on every
        call, and named_modules' de-duplicating generator costs several times more."""
        modules, stack = [self._block], [child for child in self._modules.values() if child is not None]
        while stack:
            module = stack.pop()
            modules.append(module)
            stack += [child for child in module._modules.values() if child is not None]
        return modules

    @staticmethod
    def _tensors(modules: list[nn.Module]) -> list[Tensor]:
        """Every parameter and buffer of ``modules`` (``_modules_now``), in a fixed order."""
        tensors = []
        for module in modules:
            tensors += [t for t in module._parameters.values() if t is not None]
            tensors += [t for t in module._buffers.values() if t is not None]
        return tensors

    def _fold_in_call(self, modules: list[nn.Module]) -> bool:
        """Whether the weights must be folded inside the call: autograd needs the graph, the
        compiler traces it, or a parametrization computes a weight on every read."""
        if torch.compiler.is_compiling():
            return True
        # parametrize keeps a module's parametrizations in its "parametrizations" child
        if any("parametrizations" in m._modules for m in modules):
            return True
        return torch.is_grad_enabled() and any(
            p.requires_grad for m in modules for p in m._parameters.values() if p is not None)

    def folded_params(self, dtype: torch.dtype, device: torch.device) -> InceptionParams:
        """Folded weights in kernel layout (every BN with its running statistics); cached unless
        autograd, the compiler or a parametrization needs them folded in the call."""
        return self._folded_params(self.match.conv_units(self), dtype, device, self._modules_now())

    def _folded_params(self, units: dict, dtype: torch.dtype, device: torch.device,
                       modules: list[nn.Module]) -> InceptionParams:
        if self._fold_in_call(modules):
            return params_from_units(units, self.match.relu, dtype, self.match.cat_order,
                                     fold_dtype=in_call_fold_dtype(dtype))
        return self._cached(units, dtype, device, modules)[2]

    def aten_weights(self, dtype: torch.dtype, device: torch.device) -> AtenWeights:
        """The aten tactic's folded weights in conv layout: cached beside ``folded_params`` (same
        rules), else folded straight into the conv layout inside the call."""
        return self._aten_weights(self.match.conv_units(self), dtype, device, self._modules_now())

    def _aten_weights(self, units: dict, dtype: torch.dtype, device: torch.device,
                      modules: list[nn.Module]) -> AtenWeights:
        if self._fold_in_call(modules):
            return aten_weights_from_units(units, self.match.relu, dtype, self.match.cat_order,
                                           fold_dtype=in_call_fold_dtype(dtype))
        cache = self._cached(units, dtype, device, modules)
        if cache[3] is None:
            with torch.inference_mode(False), torch.no_grad():
                cache = cache[:3] + (aten_weights(cache[2]),)
            self._cache = cache  # a new entry as a whole, as _cached replaces it
        return cache[3]

    def _cached(self, units: dict, dtype: torch.dtype, device: torch.device, modules: list[nn.Module]) -> tuple:
        """The current cache entry for (dtype, device), re-folded when a weight changed."""
        tensors = self._tensors(modules)
        # (address, version, dtype) per tensor: a tensor moved to another device has another
        # address (CUDA's unified addressing), and no address is reused while the entry keeps
        # its storage alive
        key = (dtype, device) + tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
        cache = self._cache  # read once: another thread may replace it meanwhile
        if cache is None or cache[0] != key:
            # normal tensors even under inference_mode: a later autograd forward may save them
            with torch.inference_mode(False), torch.no_grad():
                params = params_from_units(units, self.match.relu, dtype, self.match.cat_order)
            # the storages the key's addresses belong to, kept alive so no address is reused
            cache = (key, [t.untyped_storage() for t in tensors], params, None)
            self._cache = cache
        return cache

    def forward(self, x: Tensor) -> Tensor:
        units = self.match.conv_units(self)
        check_input_shape(x, units["branch1"][0].in_channels)
        modules = self._modules_now()
        if has_hooks(modules):
            warnings.warn(FusedFallbackWarning(
                "FusedInception runs its original modules for this call, so that these hooks fire: "
                + "; ".join(describe_hooks(self._block))), stacklevel=2)
            return self._run_block(x, Choice(MODULES, "hooks a fused launch would skip"))
        bns = [bn for _, bn in units.values()]
        if any(isinstance(bn, nn.BatchNorm2d) and (bn.running_mean is None or bn.running_var is None)
               for bn in bns):
            # batch statistics in every mode, no buffers: see the docstring
            return self._run_block(x, Choice(MODULES, "a BatchNorm without running statistics"))
        batch_stats = [isinstance(bn, nn.BatchNorm2d) and bn.training for bn in bns]
        if any(batch_stats) and not all(bn is not None for bn in bns):
            return self._run_block(x, Choice(MODULES, "batch statistics with BatchNorm on some convs only"))
        dtype = self._compute_dtype(x, units["branch1"][0])
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(
            p.requires_grad for m in modules for p in m._parameters.values() if p is not None))
        mode = call_mode(any(batch_stats), needs_grad)
        choice = choose_tactic(x, dtype, mode, block_shape(units))
        if choice.tactic == MODULES:
            return self._run_block(x, choice)
        if choice.tactic == ATEN_BN and any(bn is None for bn in bns) and not all(bn is None for bn in bns):
            # every BN here is in eval (batch statistics with BN on some convs only ran the modules
            # above): folded, as aten does
            choice = Choice(ATEN, f"{choice.reason}; aten-bn needs BatchNorm on all six convs or on none, so aten "
                                  "(BatchNorm folded)")
        self._note_tactic(choice)
        if choice.tactic == ATEN_BN:
            _note_path("aten_bn", dtype)
            return aten_bn_forward(x.to(dtype), units, self.match.relu, self.match.cat_order)
        if mode == BN_TRAINING:
            return self._forward_batch_stats(x.to(dtype), dtype, units, batch_stats)
        if choice.tactic == ATEN:
            x = x.to(dtype)
            weights = self._aten_weights(units, dtype, x.device, modules)
            _note_path("aten", dtype)
            return aten_inception_forward(x, weights)
        params = self._folded_params(units, dtype, x.device, modules)
        _note_path("fused", dtype)
        # one copy for the dtype and the layout together (autocast of an NCHW input)
        out = inception_block(kernel_compute_layout(x, dtype), *op_arguments(params))
        return out.contiguous(memory_format=output_memory_format(x))

    def _note_tactic(self, choice: Choice) -> None:
        # eager calls only: a traced attribute write would be a side effect of every compiled call
        if not torch.compiler.is_compiling():
            self.last_tactic = (choice.tactic, choice.reason)

    def _run_block(self, x: Tensor, choice: Choice) -> Tensor:
        """The original modules (see the module docstring for when)."""
        self._note_tactic(choice)
        _note_path("modules", x.dtype)
        self._block.training = self.training
        return self._block(x)

    def _compute_dtype(self, x: Tensor, conv: nn.Conv2d) -> torch.dtype:
        """The autocast dtype under autocast; else x's, which must match the weights' (those of
        ``conv``, the block's branch-1 conv, as a conv with mismatched input and weight dtypes
        raises)."""
        if torch.is_autocast_enabled(x.device.type):
            return torch.get_autocast_dtype(x.device.type)
        # not conv.weight: under a parametrization that would run it once more than the conv does
        weight = (next(conv.parametrizations.weight.parameters()) if parametrize.is_parametrized(conv, "weight")
                  else conv.weight)
        if x.dtype != weight.dtype:
            raise TypeError(f"input dtype {x.dtype} does not match the weights' dtype {weight.dtype}")
        return x.dtype

    def _forward_batch_stats(self, x: Tensor, dtype: torch.dtype, units: dict[str, tuple[nn.Conv2d, nn.Module]],
                             batch_stats: list[bool]) -> Tensor:
        """Some BN in training (``batch_stats``, per unit in UNIT_NAMES order), each unit in its own
        BN's mode (see the module docstring); ``x`` already in the compute ``dtype``."""
        convs = [units[name][0] for name in UNIT_NAMES]
        bns = [units[name][1] for name in UNIT_NAMES]
        update = [stats and bn.track_running_stats for stats, bn in zip(batch_stats, bns)]
        momentums = [running_average_factor(bn) if up else 0.0 for bn, up in zip(bns, update)]
        weights, biases, gammas, betas = [], [], [], []
        for conv, bn in zip(convs, bns):
            # each attribute read once: a parametrized one computes on every read, as in the modules
            weight, bias, gamma, beta = conv.weight, conv.bias, bn.weight, bn.bias
            channels = weight.shape[0]
            weights.append(weight.to(dtype))
            biases.append(bias.to(dtype) if bias is not None else x.new_zeros(channels))
            # no affine parameters: ones and zeros (exact in any dtype) in the running statistics'
            # dtype, the dtype an affine BN's parameters would have (CPU refuses float32 parameters
            # with fp16 running statistics)
            stats_dtype = bn.running_mean.dtype
            gammas.append(gamma if gamma is not None else x.new_ones(channels, dtype=stats_dtype))
            betas.append(beta if beta is not None else x.new_zeros(channels, dtype=stats_dtype))
        _note_path("bn_train", dtype)
        out, _, _, new_means, new_vars = inception_block_bn_train(
            x, weights, biases, gammas, betas,
            [bn.running_mean for bn in bns], [bn.running_var for bn in bns], batch_stats, update,
            momentums, [bn.eps for bn in bns], self.match.relu,
            [CAT_ORDER.index(name) for name in self.match.cat_order],
        )
        with torch.no_grad():
            sizes = [bn.running_mean.numel() for bn in bns]
            for bn, up, mean, var in zip(bns, update, new_means.split(sizes), new_vars.split(sizes)):
                if up:
                    bn.running_mean.copy_(mean)
                    bn.running_var.copy_(var)
        return out
