"""Reference GoogLeNet models (paper and torchvision variants), their loss and a shape summary."""

from .googlenet import VARIANTS, GoogLeNet, GoogLeNetOutputs, InceptionAux, googlenet
from .inception import BasicConv2d, Inception
from .loss import GoogLeNetLoss
from .randomize import randomize_
from .summary import format_shape_table, stage_shapes

__all__ = [
    "VARIANTS",
    "BasicConv2d",
    "GoogLeNet",
    "GoogLeNetLoss",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "format_shape_table",
    "googlenet",
    "randomize_",
    "stage_shapes",
]
