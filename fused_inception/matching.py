"""Recognise an Inception block by its dataflow, whatever its class and attribute names.

``match_inception(block)`` traces ``block`` with ``torch.fx`` (standard ``torch.nn`` modules stay
leaves; ``nn.Sequential`` and user wrappers such as a ``BasicConv2d`` are traced through, so any
nesting is flattened) and accepts exactly this graph::

    x ──┬── unit(1x1) ──────────────────────┐
        ├── unit(1x1) ── unit(kxk) ─────────┤
        ├── unit(1x1) ── unit(kxk) ─────────┼── torch.cat(dim=1) ── output
        └── max-pool 3x3/1 pad 1 ── unit(1x1) ┘      (branches in any order)

where ``unit`` = ``nn.Conv2d`` [→ ``nn.BatchNorm2d``] [→ ReLU]. That is the one computation the
fused kernels implement (see ``spec.py``); anything else would be silently computed wrongly, so
every deviation is refused with a :class:`NotInception` whose message names it:

* 1x1 convs: kernel 1, stride 1, padding 0, dilation 1, groups 1, ``padding_mode="zeros"``;
  the four convs that read ``x`` have the same ``in_channels``.
* kxk convs: square, odd k in 1..7, stride 1, padding k//2 (or ``"same"``), dilation 1, groups 1,
  zero padding; ``in_channels`` equal to the reduce's ``out_channels``. The kernels pad the
  reduced tensor with zeros over a (k-1)/2 halo and keep H×W, so nothing else can be fused.
* BatchNorm2d with running statistics (folded into the conv; affine or not), or torchvision's
  ``FrozenBatchNorm2d`` (always folded).
* a conv or BatchNorm2d parametrized with ``torch.nn.utils.parametrize`` (weight_norm,
  spectral_norm, ...) counts as its plain class: the fused block reads its weights through the
  parametrization on every call.
* ReLU as ``nn.ReLU``, ``F.relu``, ``torch.relu``, ``torch.relu_``/``F.relu_`` or
  ``x.relu()``/``x.relu_()`` — after all six convs or after none (the kernels take one flag).
  Other activations (ReLU6, LeakyReLU, SiLU, ...) are refused.
* max-pool: ``nn.MaxPool2d``, ``F.max_pool2d`` or ``torch.max_pool2d`` with kernel 3, stride 1,
  padding 1, dilation 1, no indices (``ceil_mode`` is free: at stride 1 it changes nothing).
* the cat: ``torch.cat`` / ``torch.concat`` / ``torch.concatenate`` of a list or tuple of the
  four branch outputs along dim 1 (the channels of NCHW), whose result is what ``forward``
  returns. ``nn.Identity`` modules are looked through; every other op (dropout, arithmetic,
  shape queries, a second use of ``x`` or of an intermediate result, ...) is refused.

Naming (``UNIT_NAMES`` of ``folding.py``): the single-conv branch is ``branch1``, the
pool branch's conv ``pool_proj``, and of the two reduce → kxk branches the one that comes first
in the cat is ``reduce3``/``conv3``, the second ``reduce5``/``conv5`` (their k may be anything
allowed above). ``InceptionMatch.cat_order`` records the order the branches are concatenated in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrize import type_before_parametrizations

from .folding import UNIT_NAMES, ConvUnit

__all__ = ["InceptionMatch", "NotInception", "UnitRef", "channel_cats", "match_inception",
           "match_traced", "trace_block"]


@dataclass(frozen=True)
class UnitRef:
    """One conv unit of a matched block, by qualified module name inside the block."""

    conv: str
    """the ``nn.Conv2d``, e.g. ``"branch2.0.conv"``"""
    bn: str | None
    """the ``nn.BatchNorm2d`` right after it, or None"""


@dataclass(frozen=True)
class InceptionMatch:
    """Where a block's six conv units are, and how its branches are combined."""

    units: dict[str, UnitRef]
    """exactly the keys of ``folding.UNIT_NAMES``"""
    relu: bool
    """True: all six convs are followed by ReLU; False: none is"""
    cat_order: tuple[str, str, str, str]
    """the branches in concatenation order, each named by its output conv unit
    (a permutation of ``("branch1", "conv3", "conv5", "pool_proj")``)"""

    def conv_units(self, block: nn.Module) -> dict[str, ConvUnit]:
        """The (conv, BatchNorm2d / FrozenBatchNorm2d / None) module pairs of ``block`` (the
        matched block, or the FusedInception that adopted its children), keyed and ordered by
        ``folding.UNIT_NAMES``, as ``folding.params_from_units`` takes them."""
        def unit(ref: UnitRef) -> ConvUnit:
            return _submodule(block, ref.conv), _submodule(block, ref.bn) if ref.bn is not None else None

        return {name: unit(self.units[name]) for name in UNIT_NAMES}


def _submodule(block: nn.Module, path: str) -> nn.Module:
    """``block.get_submodule(path)`` read straight from the ``_modules`` dicts: a fused block
    resolves its units on every call, and get_submodule's per-step checks cost ~10 us each."""
    module = block
    for part in path.split("."):
        child = module._modules.get(part)
        if child is None:
            return block.get_submodule(path)  # its AttributeError names what is missing
        module = child
    return module


class NotInception(Exception):
    """``block`` is not an Inception block the fused kernels can run; ``str(e)`` says why."""


# --- recognising ops -------------------------------------------------------------------------

# F.relu_ is torch.relu_ itself; F.relu takes (input, inplace) and only the input is a tensor.
_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
_RELU_METHODS = ("relu", "relu_")
_CAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)
# positional parameter names, to read the arguments fx recorded however the call spelled them
_MAXPOOL_FUNCTIONS: dict[Any, tuple[str, ...]] = {
    F.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    torch.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
}


def is_frozen_bn(module: nn.Module) -> bool:
    """Whether ``module`` is a torchvision.ops.FrozenBatchNorm2d (BN with fixed statistics, always
    folded; torchvision is optional: without it imported no module can be one)."""
    misc = sys.modules.get("torchvision.ops.misc")
    return misc is not None and type(module) is getattr(misc, "FrozenBatchNorm2d", None)


class _Tracer(fx.Tracer):
    """fx's tracer, keeping FrozenBatchNorm2d whole (it lives outside torch.nn, so fx would trace
    through it into arithmetic), and tracing nested modules without running their hooks (fx calls
    them through ``Module.__call__``, which would hand the user's hooks proxies: the graph is
    the hook-free dataflow, and a fused block runs its original modules while hooks exist)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_frozen_bn(m) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        return super().call_module(m, m.forward, args, kwargs)


def _is_function(node: fx.Node, targets) -> bool:
    # identity, not ==: targets may be any callable, and these are module-level singletons
    return node.op == "call_function" and any(node.target is t for t in targets)


class _Graph:
    """The traced graph of one block, with the module lookups and messages the matcher needs."""

    def __init__(self, block: nn.Module, graph: fx.Graph) -> None:
        self.block = block
        self.graph = graph
        self.visited: set[fx.Node] = set()

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.block.get_submodule(node.target) if node.op == "call_module" else None

    def describe(self, node: Any) -> str:
        """A readable name of what produced ``node`` (or of a non-node value)."""
        if not isinstance(node, fx.Node):
            return f"the value {node!r}"
        if node.op == "placeholder":
            return f"the input {node.target!r}"
        if node.op == "call_module":
            return f"{type(self.module(node)).__name__} module {node.target!r}"
        if node.op == "call_function":
            try:
                name = fx.node._get_qualified_name(node.target)
            except Exception:  # exotic callables: fall back to their repr
                name = repr(node.target)
            return f"{name.replace('_operator.', 'operator.')}()"
        if node.op == "call_method":
            return f"method .{node.target}()"
        if node.op == "get_attr":
            return f"attribute {node.target!r}"
        return f"{node.op} {node.target!r}"

    def is_conv(self, node: fx.Node) -> bool:
        return isinstance(self.module(node), nn.Conv2d)

    def is_bn(self, node: fx.Node) -> bool:
        module = self.module(node)
        return isinstance(module, nn.BatchNorm2d) or (module is not None and is_frozen_bn(module))

    def is_relu(self, node: fx.Node) -> bool:
        return (isinstance(self.module(node), nn.ReLU) or _is_function(node, _RELU_FUNCTIONS)
                or (node.op == "call_method" and node.target in _RELU_METHODS))

    def is_identity(self, node: fx.Node) -> bool:
        return isinstance(self.module(node), nn.Identity)

    def is_maxpool(self, node: fx.Node) -> bool:
        return isinstance(self.module(node), nn.MaxPool2d) or _is_function(node, tuple(_MAXPOOL_FUNCTIONS))

    def tensor_input(self, node: fx.Node) -> Any:
        """The single tensor operand of a unary op (module call, relu, ...)."""
        if node.op == "call_module":
            if len(node.args) != 1 or node.kwargs:
                raise NotInception(f"{self.describe(node)} is called with {len(node.args)} positional and "
                                   f"{len(node.kwargs)} keyword arguments; expected the tensor alone")
            return node.args[0]
        return node.args[0] if node.args else node.kwargs.get("input", node.kwargs.get("self"))

    def step_back(self, node: fx.Node) -> Any:
        """Mark ``node`` as part of the block, and return its operand, skipping ``nn.Identity``.

        The operand must feed ``node`` alone: a second use of an intermediate result is
        dataflow the fused kernels do not reproduce.
        """
        self.visited.add(node)
        operand = self.tensor_input(node)
        while isinstance(operand, fx.Node) and self.is_identity(operand):
            self.check_single_use(operand)
            self.visited.add(operand)
            operand = self.tensor_input(operand)
        if isinstance(operand, fx.Node) and operand.op != "placeholder":
            self.check_single_use(operand)
        return operand

    def check_single_use(self, node: fx.Node) -> None:
        if len(node.users) != 1:
            users = ", ".join(self.describe(u) for u in node.users) or "nothing"
            raise NotInception(f"the output of {self.describe(node)} is used by {users}; inside a branch "
                               "every result must feed only the next op")


@dataclass
class _Unit:
    conv: str
    bn: str | None
    relu: bool


@dataclass
class _Branch:
    units: list[_Unit]  # in dataflow order
    pool: fx.Node | None


def _read_unit(g: _Graph, tail: Any, where: str) -> tuple[_Unit, Any]:
    """Read ``conv [-> bn] [-> relu]`` backwards from ``tail``; return it and the conv's operand."""
    node, relu, bn = tail, False, None
    if isinstance(node, fx.Node) and g.is_relu(node):
        relu = True
        node = g.step_back(node)
    if isinstance(node, fx.Node) and g.is_bn(node):
        bn = node
        node = g.step_back(node)
    if not (isinstance(node, fx.Node) and g.is_conv(node)):
        found = g.describe(node)
        if bn is not None:
            raise NotInception(f"{where}: {g.describe(bn)} follows {found}, not a Conv2d")
        raise NotInception(f"{where}: unsupported op {found}; a branch may hold only Conv2d, "
                           "BatchNorm2d, ReLU and one 3x3/1 max-pool")
    operand = g.step_back(node)
    return _Unit(conv=node.target, bn=bn.target if bn is not None else None, relu=relu), operand


def _read_branch(g: _Graph, tail: Any, x: fx.Node, where: str) -> _Branch:
    """Read one branch backwards from its cat operand down to the block input ``x``."""
    last, operand = _read_unit(g, tail, where)
    if operand is x:
        return _Branch([last], None)
    if isinstance(operand, fx.Node) and g.is_maxpool(operand):
        pool = operand
        source = g.step_back(pool)
        if source is not x:
            raise NotInception(f"{where}: the max-pool {g.describe(pool)} reads {g.describe(source)}, "
                               "not the block input")
        return _Branch([last], pool)
    first, operand = _read_unit(g, operand, where)
    if operand is not x:
        if isinstance(operand, fx.Node) and g.is_maxpool(operand):
            raise NotInception(f"{where}: max-pool followed by two convs; the pool branch must be "
                               "max-pool -> one 1x1 conv")
        raise NotInception(f"{where}: the first conv {first.conv!r} reads {g.describe(operand)}, "
                           "not the block input")
    return _Branch([first, last], None)


# --- checking module / argument values --------------------------------------------------------

def _pair(value: Any) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value) * 2 if len(value) == 1 else tuple(value)
    return (value, value)


def _check_conv(block: nn.Module, name: str, role: str) -> nn.Conv2d:
    """Check the conv's hyper-parameters against what the kernels compute; return it."""
    conv = block.get_submodule(name)
    where = f"{role} conv {name!r}"
    if type_before_parametrizations(conv) is not nn.Conv2d:
        # a subclass may change forward() or hold no weight yet (LazyConv2d)
        raise NotInception(f"{where} is a {type(conv).__name__}, not a plain nn.Conv2d")
    k = conv.kernel_size
    if role in ("conv3", "conv5"):
        if k[0] != k[1] or k[0] % 2 == 0 or not 1 <= k[0] <= 7:
            raise NotInception(f"{where} has kernel {k}; a kxk conv needs a square odd k in 1..7")
        want_pad = (k[0] // 2, k[0] // 2)
    elif k != (1, 1):
        raise NotInception(f"{where} has kernel {k}; the {role} conv must be 1x1")
    else:
        want_pad = (0, 0)
    if conv.stride != (1, 1):
        raise NotInception(f"{where} has stride {conv.stride}; only stride 1 is fused")
    # dilation, groups and padding mode first: a wrong padding often only follows from them
    if conv.dilation != (1, 1):
        raise NotInception(f"{where} has dilation {conv.dilation}; only dilation 1 is fused")
    if conv.groups != 1:
        raise NotInception(f"{where} is a grouped conv (groups={conv.groups}); only groups=1 is fused")
    if conv.padding_mode != "zeros":
        raise NotInception(f"{where} has padding_mode {conv.padding_mode!r}; only zero padding is fused")
    padding = conv.padding
    if isinstance(padding, str):
        # "same" is k//2 for odd k; "valid" is 0, which is "same" only for k = 1
        if not (padding == "same" or want_pad == (0, 0)):
            raise NotInception(f"{where} has padding {padding!r}; it must keep H x W (padding {want_pad[0]})")
    elif tuple(padding) != want_pad:
        raise NotInception(f"{where} has padding {tuple(padding)}; expected {want_pad}, which keeps H x W")
    return conv


def _check_bn(block: nn.Module, name: str, conv: nn.Conv2d, role: str) -> None:
    bn = block.get_submodule(name)
    where = f"{role} BatchNorm {name!r}"
    if is_frozen_bn(bn):
        features = bn.running_mean.numel()
    elif type_before_parametrizations(bn) is not nn.BatchNorm2d:
        raise NotInception(f"{where} is a {type(bn).__name__}, not a plain nn.BatchNorm2d")
    elif not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise NotInception(f"{where} has no running statistics (track_running_stats=False): it cannot be folded")
    else:
        features = bn.num_features
    if features != conv.out_channels:
        raise NotInception(f"{where} has {features} features but its conv has {conv.out_channels} outputs")


def _check_pool(g: _Graph, pool: fx.Node) -> None:
    where = f"max-pool {g.describe(pool)}"
    module = g.module(pool)
    if module is not None:
        if type(module) is not nn.MaxPool2d:
            raise NotInception(f"{where} is a {type(module).__name__}, not a plain nn.MaxPool2d")
        kernel, stride, padding = module.kernel_size, module.stride, module.padding
        dilation, indices = module.dilation, module.return_indices
    else:
        names = _MAXPOOL_FUNCTIONS[next(t for t in _MAXPOOL_FUNCTIONS if pool.target is t)]
        args = dict(zip(names, pool.args))
        args.update(pool.kwargs)
        kernel = args.get("kernel_size")
        stride = args.get("stride")
        if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
            stride = kernel  # PyTorch's default: stride = kernel_size
        padding, dilation = args.get("padding", 0), args.get("dilation", 1)
        indices = args.get("return_indices", False)
    if indices:
        raise NotInception(f"{where} returns indices")
    for what, value, want in (("kernel", kernel, 3), ("stride", stride, 1), ("padding", padding, 1),
                              ("dilation", dilation, 1)):
        if _pair(value) != (want, want):
            raise NotInception(f"{where} has {what} {value!r}; the pool branch must be a 3x3 stride-1 "
                               "pad-1 max-pool")


# --- the matcher ------------------------------------------------------------------------------

def _cat_parts(node: fx.Node) -> tuple[Any, Any] | None:
    """(tensors, dim) of a torch.cat/concat/concatenate node, or None for any other node."""
    if not _is_function(node, _CAT_FUNCTIONS):
        return None
    tensors = node.args[0] if node.args else node.kwargs.get("tensors")
    if len(node.args) > 1:
        dim = node.args[1]
    else:
        dim = node.kwargs.get("dim", node.kwargs.get("axis", 0))
    return tensors, dim


def channel_cats(graph: fx.Graph, *, own_only: bool = True) -> list[fx.Node]:
    """The cat nodes along dim 1 in ``graph``; with ``own_only``, only those the traced module's
    own ``forward`` makes (fx's ``nn_module_stack`` metadata is empty for them), not its submodules'."""
    found = []
    for node in graph.nodes:
        parts = _cat_parts(node)
        if parts is None or parts[1] != 1:
            continue
        if own_only and node.meta.get("nn_module_stack"):
            continue
        found.append(node)
    return found


def trace_block(block: nn.Module) -> fx.Graph:
    """The fx graph of ``block.forward`` (what ``torch.fx.symbolic_trace`` builds, without
    generating code); NotInception("not traceable: ...") when tracing fails."""
    try:
        return _Tracer().trace(block)
    except Exception as error:  # fx raises TraceError, TypeError, ... depending on the forward
        raise NotInception(f"not traceable: {type(error).__name__}: {error}") from error


def match_inception(block: nn.Module) -> InceptionMatch:
    """Match ``block`` against the Inception dataflow (see the module docstring).

    Returns where its six conv units are, whether they are followed by ReLU and the cat order;
    raises :class:`NotInception` with the reason otherwise.
    """
    return match_traced(block, trace_block(block))


def match_traced(block: nn.Module, graph: fx.Graph) -> InceptionMatch:
    """``match_inception`` on an fx graph already traced from ``block`` (``trace_block``).

    Reads the graph backwards from its output: the output must be a channel cat of four branches
    (``_output_cat``), each a chain of conv units down to the block input (``_read_branch``); the
    branches must have an Inception block's shapes (``_assign_units``) and the graph nothing else
    (``_check_nothing_else``); then the modules themselves are checked (``_check_modules``).
    """
    g = _Graph(block, graph)
    x = _block_input(graph)
    tensors = _output_cat(g, graph, x)
    branches = [_read_branch(g, tail, x, f"branch {i + 1} of the cat") for i, tail in enumerate(tensors)]
    units, cat_order, pool = _assign_units(branches)
    _check_nothing_else(g, graph, x)
    _check_modules(block, g, units, pool)
    return InceptionMatch(
        units={role: UnitRef(conv=units[role].conv, bn=units[role].bn) for role in UNIT_NAMES},
        relu=_common_relu(units),
        cat_order=cat_order,
    )


def _block_input(graph: fx.Graph) -> fx.Node:
    """The graph's one placeholder (the block input x)."""
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise NotInception(f"forward takes {len(inputs)} inputs ({', '.join(n.target for n in inputs)}); "
                           "an Inception block takes one")
    return inputs[0]


def _output_cat(g: _Graph, graph: fx.Graph, x: fx.Node) -> list:
    """The four cat operands (the branches' last nodes) of the torch.cat along channels that the
    graph returns; marks the output, the cat and ``x`` visited."""
    output = next(n for n in graph.nodes if n.op == "output")
    result = output.args[0]
    cat = _cat_parts(result) if isinstance(result, fx.Node) else None
    if cat is None:
        has_cat = any(_cat_parts(n) is not None for n in graph.nodes)
        raise NotInception(f"forward returns {g.describe(result)}, not a torch.cat"
                           + (" (its torch.cat is not the output)" if has_cat else " (no torch.cat at all)"))
    tensors, dim = cat
    if dim != 1:
        raise NotInception(f"torch.cat along dim {dim!r}, not the channel dim 1")
    if not isinstance(tensors, (list, tuple)) or len(tensors) != 4:
        count = len(tensors) if isinstance(tensors, (list, tuple)) else g.describe(tensors)
        raise NotInception(f"torch.cat of {count} tensors; an Inception block concatenates 4 branches")
    if len(set(tensors)) != 4:
        raise NotInception("torch.cat takes the same tensor twice")
    if len(result.users) != 1:
        raise NotInception("the torch.cat result is used by more than the output")
    g.visited.update((result, output, x))
    for tail in tensors:
        if isinstance(tail, fx.Node) and tail.op != "placeholder":  # x itself fails in the branch walk
            g.check_single_use(tail)
    return list(tensors)


def _assign_units(branches: list[_Branch]) -> tuple[dict[str, _Unit], tuple[str, str, str, str], fx.Node]:
    """The six units by their UNIT_NAMES role, the cat order (each branch named by its output
    unit) and the pool node, from the branches in cat order: one single conv, two reduce -> k x k
    (the first is "3", the second "5") and one pool -> conv."""
    singles = [i for i, b in enumerate(branches) if len(b.units) == 1 and b.pool is None]
    pools = [i for i, b in enumerate(branches) if b.pool is not None]
    doubles = [i for i, b in enumerate(branches) if len(b.units) == 2]
    if (len(singles), len(pools), len(doubles)) != (1, 1, 2):
        raise NotInception(f"the cat joins {len(singles)} single-conv, {len(doubles)} reduce->kxk and "
                           f"{len(pools)} pool->conv branches; an Inception block has 1, 2 and 1")
    units = {
        "branch1": branches[singles[0]].units[0],
        "reduce3": branches[doubles[0]].units[0],
        "conv3": branches[doubles[0]].units[1],
        "reduce5": branches[doubles[1]].units[0],
        "conv5": branches[doubles[1]].units[1],
        "pool_proj": branches[pools[0]].units[0],
    }
    name_at = {singles[0]: "branch1", doubles[0]: "conv3", doubles[1]: "conv5", pools[0]: "pool_proj"}
    return units, tuple(name_at[i] for i in range(4)), branches[pools[0]].pool


def _check_nothing_else(g: _Graph, graph: fx.Graph, x: fx.Node) -> None:
    """Every node was visited by the branch walks, and only the branches read the block input."""
    extra_users = [u for u in x.users if u not in g.visited]
    if extra_users:
        raise NotInception("the block input is also used by " + ", ".join(g.describe(u) for u in extra_users))
    stray = [n for n in graph.nodes if n not in g.visited]
    if stray:
        raise NotInception("ops outside the four branches: " + ", ".join(g.describe(n) for n in stray))


def _check_modules(block: nn.Module, g: _Graph, units: dict[str, _Unit], pool: fx.Node) -> None:
    """The units' modules: none shared by two units, convs and BNs the kernels run, the pool a
    3x3/1 max-pool, and channel counts that chain."""
    # modules reused by two units share weights the folded copies would split apart
    seen: dict[str, str] = {}
    for role, unit in units.items():
        for name in (unit.conv, unit.bn):
            if name is None:
                continue
            if name in seen:
                raise NotInception(f"module {name!r} is used by both the {seen[name]} and the {role} unit; "
                                   "shared weights are not fused")
            seen[name] = role

    convs = {}
    for role, unit in units.items():
        convs[role] = _check_conv(block, unit.conv, role)
        if unit.bn is not None:
            _check_bn(block, unit.bn, convs[role], role)
    _check_pool(g, pool)

    firsts = {role: convs[role].in_channels for role in ("branch1", "reduce3", "reduce5", "pool_proj")}
    if len(set(firsts.values())) != 1:
        raise NotInception(f"the convs that read the block input take different channel counts {firsts}")
    for reduce, kxk in (("reduce3", "conv3"), ("reduce5", "conv5")):
        if convs[reduce].out_channels != convs[kxk].in_channels:
            raise NotInception(f"{reduce} gives {convs[reduce].out_channels} channels but {kxk} takes "
                               f"{convs[kxk].in_channels}")


def _common_relu(units: dict[str, _Unit]) -> bool:
    """Whether all six convs are followed by ReLU (False: none is; a mix is refused)."""
    with_relu = [role for role in UNIT_NAMES if units[role].relu]
    if 0 < len(with_relu) < len(UNIT_NAMES):
        without = [role for role in UNIT_NAMES if not units[role].relu]
        raise NotInception(f"mixed ReLU: {', '.join(with_relu)} followed by ReLU but {', '.join(without)} "
                           "not; the kernels apply ReLU after all six convs or none")
    return bool(with_relu)
