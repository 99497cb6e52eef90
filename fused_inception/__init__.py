"""fused_inception: GoogLeNet's Inception blocks as a few fused Triton launches.

Public API (docs/DESIGN.md §2): ``fused_inception.models`` (reference GoogLeNet, both variants, and
GoogLeNetLoss); ``fuse(model)`` / ``unfuse(model)`` (swap Inception-shaped blocks for
``FusedInception`` and back); ``FusedInceptionFunction`` (the autograd Function) and the custom op
``torch.ops.fused_inception.inception_block``; ``inception_forward`` (the functional fused block);
``InceptionSpec`` and ``InceptionParams`` (a block's configuration and folded weights);
``FusedFallbackWarning`` (a fused block ran its original modules for a call, e.g. for a hook).
"""

from . import models
from .hooks import FusedFallbackWarning
from .custom_op import FusedInceptionFunction
from .module import FusedInception
from .forward import inception_forward
from .params import InceptionParams, fold_batch_norm
from .patching import FuseReport, fuse, fuse_with_report, unfuse
from .spec import GOOGLENET_BLOCKS, InceptionSpec, googlenet_spec

__all__ = [
    "FuseReport",
    "FusedFallbackWarning",
    "FusedInception",
    "FusedInceptionFunction",
    "GOOGLENET_BLOCKS",
    "InceptionParams",
    "InceptionSpec",
    "fold_batch_norm",
    "fuse",
    "fuse_with_report",
    "googlenet_spec",
    "inception_forward",
    "models",
    "unfuse",
]
