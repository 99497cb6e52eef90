"""fused_inception: GoogLeNet's Inception blocks as a few fused Triton launches.

Public API (DESIGN.md §2): ``fused_inception.models`` (reference GoogLeNet, both variants, and
GoogLeNetLoss), ``inception_forward`` (the functional fused block), ``InceptionSpec`` and
``InceptionParams`` (a block's configuration and folded weights).
"""

from . import models
from .ops import inception_forward
from .params import InceptionParams, fold_batch_norm
from .spec import GOOGLENET_BLOCKS, InceptionSpec, googlenet_spec

__all__ = [
    "GOOGLENET_BLOCKS",
    "InceptionParams",
    "InceptionSpec",
    "fold_batch_norm",
    "googlenet_spec",
    "inception_forward",
    "models",
]
