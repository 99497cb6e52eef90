"""fused_inception: GoogLeNet's Inception blocks as a few fused Triton launches.

Public API (docs/DESIGN.md §2), in reading order:

* ``fused_inception.kernels``: the Triton kernels (the block's two, the stem's epilogue), their
  launchers and configs.
* ``inception_forward`` (``forward.py``): the functional fused block, x and folded
  ``InceptionParams`` in, output out; ``forward.count_launches`` counts its kernel launches.
* ``torch.ops.fused_inception.inception_block`` (``custom_op.py``): the same as a torch.library
  op with autograd, opaque to torch.compile; ``FusedInceptionFunction``, an autograd.Function
  shim over it.
* ``FusedInception`` (``module.py``): the nn.Module that runs an existing block fused, in every
  BN mode, keeping its state_dict; ``module.record_paths`` records which path each call takes.
* ``fuse`` / ``fuse_with_report`` / ``unfuse`` (``patching.py``): swap every Inception-shaped
  block of a model (found by ``matching.match_inception``, by dataflow) for a ``FusedInception``
  and back; ``FuseReport`` says what was swapped and why near-misses were not.
* ``InceptionSpec``, ``googlenet_spec``, ``GOOGLENET_BLOCKS`` (``spec.py``): a block's
  configuration; ``InceptionParams``, ``fold_batch_norm`` (``params.py``): its folded weights.
* ``fused_inception.models``: reference GoogLeNet (both ``spec.VARIANTS``) and GoogLeNetLoss.
* ``FusedStemUnit`` (``stem.py``): a GoogLeNet stem conv unit and its max-pool as the conv and one
  epilogue launch (inference); ``fuse`` swaps a GoogLeNet's three.
* ``FusedFallbackWarning``: a fused block ran its original modules for a call (e.g. for a hook).

The commands (``python -m fused_inception ...``) live in ``fused_inception.tools``, which the
library never imports.
"""

from . import models
from .hooks import FusedFallbackWarning
from .custom_op import FusedInceptionFunction
from .module import FusedInception
from .forward import inception_forward
from .params import InceptionParams, fold_batch_norm
from .patching import FuseReport, fuse, fuse_with_report, unfuse
from .spec import GOOGLENET_BLOCKS, InceptionSpec, googlenet_spec
from .stem import FusedStemUnit

__all__ = [
    "FuseReport",
    "FusedFallbackWarning",
    "FusedInception",
    "FusedInceptionFunction",
    "FusedStemUnit",
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
