"""Triton kernels of the fused Inception block (and of the fused stem's epilogue) and their launch helpers.

Pure functions of tensors: no nn.Module, no autograd here. Installed as ``fused_inception.kernels``.
"""

from .bn_relu_pool import launch_bn_relu_pool
from .configs import PointwiseConfig, ReduceConvConfig, launchable_configs
from .pointwise_pool import launch_pointwise_pool
from .reduce_conv import launch_reduce_conv
from .tuned_configs import pick_pointwise_config, pick_reduce_conv_config

__all__ = [
    "PointwiseConfig",
    "ReduceConvConfig",
    "launch_bn_relu_pool",
    "launch_pointwise_pool",
    "launch_reduce_conv",
    "pick_pointwise_config",
    "pick_reduce_conv_config",
    "launchable_configs",
]
