"""Which tactic each fused block of a model ran on its last call, and why, as bench and parity
report it: read from each ``FusedInception``'s ``last_tactic`` (``fused_inception.module``), set
by every eager call (a compiled call leaves it as it was)."""

from __future__ import annotations

from torch import nn

from fused_inception.module import FusedInception

NOT_RECORDED = "no eager call recorded one (compiled calls do not)"


def ran_tactics(model: nn.Module, scope: str) -> dict[str, dict[str, str | None]]:
    """{block name: {"tactic": name or None, "reason": why}} for every FusedInception in
    ``model``, in module order; a block's name is its attribute path without torchvision's
    ``inception`` prefix ("3a"), or ``scope`` when ``model`` is the block itself."""
    ran = {}
    for name, module in model.named_modules():
        if isinstance(module, FusedInception):
            tactic, reason = module.last_tactic or (None, NOT_RECORDED)
            ran[name.removeprefix("inception") or scope] = {"tactic": tactic, "reason": reason}
    return ran


def tactic_summary(ran: dict[str, dict[str, str | None]], reasons: bool = True) -> str:
    """One line: the blocks grouped by what they ran, e.g. ``aten (3a,3b): CPU, inference, nchw:
    fastest in the committed CPU measurement`` (``reasons=False``: tactics and blocks only)."""
    groups: dict[tuple, list[str]] = {}
    for block, r in ran.items():
        groups.setdefault((r["tactic"], r["reason"] if reasons else None), []).append(block)
    parts = []
    for (tactic, reason), blocks in groups.items():
        parts.append(f"{tactic or 'unknown'} ({','.join(blocks)})" + (f": {reason}" if reason else ""))
    return "; ".join(parts) if parts else "-"
