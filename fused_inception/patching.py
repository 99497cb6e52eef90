"""Swap every Inception-shaped submodule of a model for ``FusedInception``, and back.

``fuse(model)`` walks the model top-down (``named_modules`` order, the model itself first). Each
*candidate* is offered to ``matching.match_inception``, which judges it by its dataflow, not its
class: a match is replaced in its parent by ``FusedInception.from_module(block, match)`` and not
descended into; a non-match is descended into. A candidate is a module with at least six distinct
``nn.Conv2d`` among its submodules — fewer cannot form an Inception block (and no submodule of it
can), so such subtrees are neither traced nor searched — other than an ``nn.ModuleList`` or
``nn.ModuleDict`` (no ``forward`` to trace; their entries are candidates themselves).

What the report calls *skipped* (kept narrow, so it lists near-misses rather than every module):
a candidate that did not match and

* whose own ``forward`` (not one of its submodules') concatenates along dim 1
  (``torch.cat``/``concat``/``concatenate``), or
* that cannot be traced by ``torch.fx`` and contains an ``nn.MaxPool2d`` (with its six convs it
  may be an Inception block hidden behind Python control flow).

Every other non-matching candidate (a whole GoogLeNet, an aux head, a stage ``nn.Sequential``)
is only logged at DEBUG. One INFO line per swap and per skip, and a summary line, go to the
``fused_inception`` logger.

A swapped block with hooks that its fused launch would skip (on the block or an inner module,
or global module hooks; see ``fused_inception.hooks``) is also listed under *hooked*, with a
WARNING line: it runs its original modules, with a warning per call, while they are present.

The report also says which tactic each swapped block will run per device class, and why
(``selection.tactic_lines``: the CPU's committed default per mode; on a GPU the winners its tuned
file records for the block's shape, else the untuned rule), in ``FuseReport.tactics``.

GoogLeNet stems: after the blocks, each GoogLeNet in the model (torchvision's, or this package's
torchvision variant) has its three stem conv units swapped for ``stem.FusedStemUnit``, the conv
and one launch of BN, ReLU and the max-pool after it, and the slots of the two fused max-pools
(``maxpool1``, ``maxpool2``) hold an ``nn.Identity``. A unit or pool with hooks at fuse time is
left as it is and listed under *skipped*. ``FuseReport.stem`` lists the swaps.

State dicts keep their keys: ``FusedInception`` and ``FusedStemUnit`` register the original
module's children under their own names (a max-pool has no state). ``unfuse`` puts the original
block, unit and pool objects (with the current weights) back.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from torch import nn

from .hooks import describe_hooks
from .matching import InceptionMatch, NotInception, channel_cats, match_traced, trace_block
from .module import FusedInception
from .selection import block_shape, current_gpu_table, tactic_lines
from .stem import STEM_SLOTS, FusedStemUnit, fusable_unit, stem_hooks

logger = logging.getLogger("fused_inception")

MIN_CONVS = 6  # an Inception block has six convs: 1x1, 2 x (1x1 -> kxk), pool -> 1x1

__all__ = ["FuseReport", "fuse", "fuse_with_report", "unfuse"]


def _display(name: str) -> str:
    return name if name else "<model>"


@dataclass
class FuseReport:
    """What ``fuse_with_report`` did: swapped blocks and skipped near-misses (see the module docstring)."""

    swapped: list[tuple[str, str]] = field(default_factory=list)
    """(qualified name in the model, "" for the model itself; class name of the replaced module)"""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(qualified name; why it did not match)"""
    hooked: list[tuple[str, list[str]]] = field(default_factory=list)
    """(qualified name of a swapped block; the hooks present at fuse time that its fused launch
    would skip, see fused_inception.hooks): while any is present, the block runs its original
    modules, with a FusedFallbackWarning per call"""
    tactics: list[str] = field(default_factory=list)
    """which tactic the swapped blocks run per device class, and why (selection.tactic_lines);
    empty when nothing was swapped"""
    stem: list[tuple[str, str | None]] = field(default_factory=list)
    """(qualified name of a GoogLeNet stem conv unit swapped for a FusedStemUnit; the max-pool
    slot fused with it, replaced by nn.Identity, or None)"""

    def __str__(self) -> str:
        stem = f", {len(self.stem)} stem unit(s) fused" if self.stem else ""
        lines = [f"fuse: {len(self.swapped)} Inception block(s) swapped, {len(self.skipped)} candidate(s) skipped{stem}"]
        lines += [f"  swapped {_display(name)} ({cls}) -> FusedInception" for name, cls in self.swapped]
        lines += [f"  skipped {_display(name)}: {reason}" for name, reason in self.skipped]
        lines += [f"  hooks on {_display(name)} ({'; '.join(hooks)}): it runs its original modules while they "
                  "are present" for name, hooks in self.hooked]
        lines += [f"  {line}" for line in self.tactics]
        lines += [f"  stem unit {name}{f' + {pool}' if pool else ''} -> FusedStemUnit" for name, pool in self.stem]
        return "\n".join(lines)


def _conv_count(module: nn.Module) -> int:
    # modules() yields each module object once, so shared convs count once
    return sum(1 for m in module.modules() if isinstance(m, nn.Conv2d))


def _has_maxpool(module: nn.Module) -> bool:
    return any(isinstance(m, nn.MaxPool2d) for m in module.modules())


def _walk_replace(model: nn.Module, visit) -> nn.Module:
    """Top-down walk calling ``visit(name, module)``; where it returns a module, put that in the
    parent's place and do not descend. A module reached twice (shared) is visited once, and its
    replacement, if any, is put in every place. Returns the (possibly replaced) model."""
    done: dict[int, nn.Module | None] = {}

    def walk(name: str, module: nn.Module) -> nn.Module | None:
        if id(module) in done:
            return done[id(module)]
        done[id(module)] = None  # set before descending: a module inside itself must not loop
        replacement = visit(name, module)
        if replacement is not None:
            done[id(module)] = replacement
            return replacement
        # _modules, not named_children(): that yields a module shared by two slots only once
        for child_name, child in list(module._modules.items()):
            if child is None:
                continue
            new = walk(f"{name}.{child_name}" if name else child_name, child)
            if new is not None:
                # setattr re-registers under the same key; Sequential/ModuleList/ModuleDict keys are
                # their _modules keys, so this works for them too
                setattr(module, child_name, new)
        return None

    replaced = walk("", model)
    return replaced if replaced is not None else model


def _match_candidate(name: str, module: nn.Module, report: FuseReport) -> InceptionMatch | None:
    """The match of a candidate, or None: a near-miss (see the module docstring) is added to
    ``report.skipped`` and logged at INFO, any other non-match logged at DEBUG."""
    def not_matched(error: NotInception, near_miss: bool, what: str) -> None:
        if near_miss:
            report.skipped.append((name, str(error)))
            logger.info("fuse: skipped %s (%s): %s", _display(name), type(module).__name__, error)
        else:
            logger.debug("fuse: %s %s: %s", what, _display(name), error)

    try:
        graph = trace_block(module)
    except NotInception as error:
        not_matched(error, _has_maxpool(module), "not a candidate")
        return None
    try:
        return match_traced(module, graph)
    except NotInception as error:
        not_matched(error, bool(channel_cats(graph, own_only=True)), "not Inception")
        return None


def _swap(name: str, module: nn.Module, match: InceptionMatch, report: FuseReport) -> FusedInception:
    """The FusedInception for a matched block, noted in ``report.swapped`` (and ``report.hooked``
    when it has hooks its fused launch would skip)."""
    fused = FusedInception.from_module(module, match)
    report.swapped.append((name, type(module).__name__))
    logger.info("fuse: swapped %s (%s) -> FusedInception", _display(name), type(module).__name__)
    hooks = describe_hooks(module)
    if hooks:
        report.hooked.append((name, hooks))
        logger.warning("fuse: %s has hooks a fused launch would skip (%s): it runs its original modules "
                       "while they are present", _display(name), "; ".join(hooks))
    return fused


def _is_googlenet(module: nn.Module) -> bool:
    """Whether ``module`` is a GoogLeNet whose forward runs STEM_SLOTS in that order with nothing
    between them: torchvision's, or this package's torchvision variant (the paper variant has LRN
    in its stem and no BN)."""
    cls = type(module)
    if cls.__name__ != "GoogLeNet":
        return False
    if cls.__module__ == "torchvision.models.googlenet":
        return True
    return (cls.__module__ == "fused_inception.models.googlenet" and getattr(module, "lrn1", 0) is None
            and getattr(module, "lrn2", 0) is None)


def _stem_swap(net: nn.Module, slot: str, pool_slot: str | None) -> FusedStemUnit | str:
    """The FusedStemUnit for ``net``'s unit in ``slot`` (and the pool in ``pool_slot``), or why not."""
    unit = getattr(net, slot, None)
    pool = getattr(net, pool_slot, None) if pool_slot else None
    if isinstance(unit, FusedStemUnit):
        return unit  # fused already
    if not fusable_unit(unit):
        return "not a BasicConv2d with ReLU and an affine BatchNorm2d with running statistics"
    if pool_slot and type(pool) is not nn.MaxPool2d:
        return f"{pool_slot} is not an nn.MaxPool2d"
    hooks = stem_hooks(unit, pool)
    if hooks:
        return f"hooks the epilogue launch would skip ({'; '.join(hooks)})"
    try:
        return FusedStemUnit(unit, pool, pool_slot)
    except ValueError as error:
        return str(error)


def _fuse_stems(model: nn.Module, report: FuseReport) -> None:
    """Swap the stem conv units of every GoogLeNet in ``model`` for FusedStemUnits, each fused
    pool's slot for an nn.Identity (stem.py); noted in ``report.stem``, refusals in
    ``report.skipped``."""
    for name, net in list(model.named_modules()):
        if not _is_googlenet(net):
            continue
        for slot, pool_slot in STEM_SLOTS:
            qualified = f"{name}.{slot}" if name else slot
            fused = _stem_swap(net, slot, pool_slot)
            if fused is getattr(net, slot):
                continue
            if isinstance(fused, str):
                report.skipped.append((qualified, f"stem unit not fused: {fused}"))
                logger.info("fuse: stem unit %s not fused: %s", qualified, fused)
                continue
            setattr(net, slot, fused)
            if pool_slot:
                setattr(net, pool_slot, nn.Identity())
            report.stem.append((qualified, pool_slot))
            logger.info("fuse: stem unit %s%s -> FusedStemUnit", qualified, f" + {pool_slot}" if pool_slot else "")


def _unfuse_stems(model: nn.Module) -> int:
    """Put every FusedStemUnit's original unit back in its slot, and its pool in the pool's slot;
    returns how many."""
    count = 0
    for parent in list(model.modules()):
        for slot, child in list(parent._modules.items()):
            if isinstance(child, FusedStemUnit):
                setattr(parent, slot, child.to_module())
                if child.pool_slot:
                    setattr(parent, child.pool_slot, child.pool)
                count += 1
    return count


def fuse_with_report(model: nn.Module, *, inplace: bool = False) -> tuple[nn.Module, FuseReport]:
    """``fuse`` that also returns a :class:`FuseReport` of what was swapped and skipped.

    Args:
        model: any module; its Inception-shaped submodules (or itself) are swapped.
        inplace: False (default): work on a deep copy, leaving ``model`` as it was; True: change
            ``model`` itself.

    Returns:
        ``(fused model, report)``: the fused model is ``model`` (or its copy) with each matched
        block replaced by a ``FusedInception`` (and GoogLeNet stems fused), or the
        ``FusedInception`` itself when ``model`` is an Inception block; the report lists swapped
        blocks, skipped near-misses with the reason each did not match, swapped blocks with hooks,
        the tactic lines and the fused stem units.

    Raises:
        Nothing of its own: a submodule that does not match stays as it is (and is reported when
        it is a near-miss). Errors of ``copy.deepcopy`` (``inplace=False``) propagate.
    """
    if not inplace:
        model = copy.deepcopy(model)
    report = FuseReport()
    shapes: dict[str, tuple[int, ...]] = {}

    def visit(name: str, module: nn.Module) -> nn.Module | None:
        if isinstance(module, FusedInception):
            return module  # already fused: keep it, do not look inside
        if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            return None  # containers without a forward: only their entries can be blocks
        if _conv_count(module) < MIN_CONVS:
            return None  # the walk then finds nothing below either: children have fewer convs still
        match = _match_candidate(name, module, report)
        if match is None:
            return None
        fused = _swap(name, module, match, report)
        shapes[_display(name)] = block_shape(match.conv_units(fused))
        return fused

    model = _walk_replace(model, visit)
    _fuse_stems(model, report)
    if shapes:
        gpu, table = current_gpu_table()
        report.tactics = tactic_lines(shapes, gpu, table)
        for line in report.tactics:
            logger.info("fuse: %s", line)
    logger.info("fuse: %d Inception block(s) swapped, %d candidate(s) skipped%s", len(report.swapped),
                len(report.skipped), f", {len(report.stem)} stem unit(s) fused" if report.stem else "")
    return model, report


def fuse(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every Inception-shaped submodule of ``model`` with a ``FusedInception``, and the
    stem conv units of every GoogLeNet in it with ``FusedStemUnit``s (the module docstring).

    Blocks are found by dataflow (``matching.match_inception``), whatever their class or
    attribute names. Parameter and buffer names (state_dict keys) are unchanged. Swaps and skips
    are logged to the ``fused_inception`` logger; ``fuse_with_report`` returns them as a report.

    Args:
        model: any module; its Inception-shaped submodules (or itself) are swapped.
        inplace: False (default): work on a deep copy, leaving ``model`` as it was; True: change
            ``model`` itself.

    Returns:
        The fused model: ``model`` (or its copy) with each matched block replaced — or, when
        ``model`` itself is an Inception block, the ``FusedInception`` that replaces it.

    Raises:
        Nothing of its own: a submodule that does not match stays as it is (``fuse_with_report``
        says why). Errors of ``copy.deepcopy`` (``inplace=False``) propagate.
    """
    return fuse_with_report(model, inplace=inplace)[0]


def unfuse(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every ``FusedInception`` in ``model`` with its plain block (``to_module()``), which
    holds the current weights and modes, and every ``FusedStemUnit`` with its unit and its pool.

    Args:
        model: a module that may hold ``FusedInception`` blocks (or be one).
        inplace: False (default): work on a deep copy, leaving ``model`` as it was; True: change
            ``model`` itself.

    Returns:
        The model with plain blocks (``model`` or its copy), or the plain block when ``model``
        itself is a ``FusedInception``.

    Raises:
        Nothing of its own; errors of ``copy.deepcopy`` (``inplace=False``) propagate.
    """

    if not inplace:
        model = copy.deepcopy(model)
    count = 0

    def visit(name: str, module: nn.Module) -> nn.Module | None:
        nonlocal count
        if isinstance(module, FusedInception):
            count += 1
            return module.to_module()
        return None

    model = _walk_replace(model, visit)
    stems = _unfuse_stems(model)
    logger.info("unfuse: %d FusedInception block(s) and %d stem unit(s) restored", count, stems)
    return model
