"""Triton kernels of the fused Inception block and their launch helpers.

Pure functions of tensors: no nn.Module, no autograd here. Installed as ``fused_inception.kernels``.
"""

from .configs import PointwiseConfig, ReduceConvConfig, launchable_configs
from .pointwise_pool import launch_pointwise_pool
from .reduce_conv import launch_reduce_conv
from .tuned_configs import pick_pointwise_config, pick_reduce_conv_config

__all__ = [
    "PointwiseConfig",
    "ReduceConvConfig",
    "launch_pointwise_pool",
    "launch_reduce_conv",
    "pick_pointwise_config",
    "pick_reduce_conv_config",
    "launchable_configs",
]
