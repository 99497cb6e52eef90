"""Per-stage output shapes of a GoogLeNet-like model, found by running one forward with hooks."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# (row label, submodule name) in forward order. conv3 is the 3x3 192 conv; fc gives the logits.
DEFAULT_STAGES: tuple[tuple[str, str], ...] = (
    ("conv1", "conv1"),
    ("maxpool1", "maxpool1"),
    ("conv3", "conv3"),
    ("maxpool2", "maxpool2"),
    *((f"inception{b}", f"inception{b}") for b in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")),
    ("logits", "fc"),
)


def stage_shapes(
    model: nn.Module,
    input_size: Sequence[int] = (1, 3, 224, 224),
    stages: Sequence[tuple[str, str]] = DEFAULT_STAGES,
) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``model`` in eval mode on random input of ``input_size`` (N, C, H, W) and return
    ``[(label, shape), ...]`` for each ``(label, submodule name)`` in ``stages``, where ``shape`` is
    the submodule's output shape without the batch dim: ``(C, H, W)`` for feature maps,
    ``(num_classes,)`` for the logits. The model's train/eval mode is restored afterwards.

    Raises ValueError if a named submodule does not exist.
    """
    modules = dict(model.named_modules())
    missing = [name for _, name in stages if name not in modules]
    if missing:
        raise ValueError(f"model has no submodule(s) {missing}")

    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for label, name in stages:
        # Bind label now; the hook runs later.
        def hook(_mod: nn.Module, _inp: object, out: torch.Tensor, label: str = label) -> None:
            shapes[label] = tuple(out.shape[1:])

        handles.append(modules[name].register_forward_hook(hook))

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.randn(*input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [(label, shapes[label]) for label, _ in stages]


def format_shape_table(rows: Sequence[tuple[str, tuple[int, ...]]]) -> str:
    """Format ``stage_shapes`` rows as a text table: stage, H x W x C (the paper's order), and C."""
    header = ("stage", "H x W x C", "C")
    body = []
    for label, shape in rows:
        hwc = "x".join(str(d) for d in (*shape[1:], shape[0]))
        body.append((label, hwc, str(shape[0])))
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}".rstrip()
        for r in (header, *body)
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
