"""GoogLeNet's training loss: main cross-entropy plus the discounted aux heads' cross-entropies."""

from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from .googlenet import GoogLeNetOutputs


class GoogLeNetLoss(nn.Module):
    """``CE(logits) + aux_weight * (CE(aux1) + CE(aux2))`` in training, ``CE(logits)`` in eval.

    The design note states total loss = main loss + auxiliary losses (an undiscounted sum); the
    paper (Szegedy et al. 2014, §5) discounts each aux loss by 0.3. The default follows the paper,
    ``aux_weight=0.3``; pass ``aux_weight=1.0`` for the design note's plain sum.

    ``forward(outputs, target)``:
        outputs: a model's output. A ``(N, num_classes)`` logits tensor (eval mode, or no aux
            heads) gives the main loss alone. A 3-tuple ``(logits, aux_logits2, aux_logits1)``
            (``GoogLeNetOutputs``, or torchvision's namedtuple of the same order) adds the aux
            terms; aux entries that are ``None`` are skipped.
        target: ``(N,)`` int64 class indices (anything ``F.cross_entropy`` accepts).
    Returns a scalar tensor (mean over the batch).
    """

    def __init__(self, aux_weight: float = 0.3) -> None:
        super().__init__()
        if not (math.isfinite(aux_weight) and aux_weight >= 0):
            raise ValueError(f"aux_weight must be a finite number >= 0, got {aux_weight!r}")
        self.aux_weight = float(aux_weight)

    def forward(self, outputs: Union[GoogLeNetOutputs, tuple, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return F.cross_entropy(outputs, target)
        if not (isinstance(outputs, tuple) and len(outputs) == 3):
            raise TypeError(
                "outputs must be a logits tensor or a (logits, aux_logits2, aux_logits1) tuple, "
                f"got {type(outputs).__name__}"
            )
        logits, aux2, aux1 = outputs
        loss = F.cross_entropy(logits, target)
        for aux in (aux1, aux2):
            if aux is not None:
                loss = loss + self.aux_weight * F.cross_entropy(aux, target)
        return loss

    def extra_repr(self) -> str:
        return f"aux_weight={self.aux_weight}"
