"""The fused block as a torch.library custom op (``fused_inception::inception_block``) with a fake
(meta) implementation and autograd, and ``FusedInceptionFunction``, an autograd.Function shim over it.

The op is opaque to torch.compile (it traces it as one node, without graph breaks) and its
backward is written with aten ops, so AOTAutograd can trace it too. Its tensor arguments are the
fields of ``InceptionParams`` in kernel layout; ``cat_order`` is a permutation of
``params.CAT_ORDER`` given as indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backward import inception_backward, kernel_layout_grads, relu_mask
from .forward import inception_forward, output_memory_format
from .params import CAT_ORDER, WEIGHT_FIELDS, InceptionParams

Tensor = torch.Tensor

def params_from_tensors(tensors: Sequence[Tensor], ch1x1: int, relu: bool, cat_order: Sequence[int]) -> InceptionParams:
    """InceptionParams from the op's tensor arguments (WEIGHT_FIELDS order)."""
    return InceptionParams(**dict(zip(WEIGHT_FIELDS, tensors)), ch1x1=ch1x1, relu=relu,
                           cat_order=tuple(CAT_ORDER[i] for i in cat_order))


def op_arguments(params: InceptionParams) -> tuple:
    """The op's arguments after x: the weight tensors, ch1x1, relu and cat_order indices."""
    order = [CAT_ORDER.index(name) for name in params.cat_order]
    return (*(getattr(params, f) for f in WEIGHT_FIELDS), params.ch1x1, params.relu, order)


@torch.library.custom_op("fused_inception::inception_block", mutates_args=())
def inception_block(
    x: Tensor,
    w_point: Tensor, b_point: Tensor,
    w_red3: Tensor, b_red3: Tensor, w_conv3: Tensor, b_conv3: Tensor,
    w_red5: Tensor, b_red5: Tensor, w_conv5: Tensor, b_conv5: Tensor,
    ch1x1: int, relu: bool, cat_order: list[int],
) -> Tensor:
    """One Inception block forward through the fused kernels (see fused_inception.forward)."""
    tensors = (w_point, b_point, w_red3, b_red3, w_conv3, b_conv3, w_red5, b_red5, w_conv5, b_conv5)
    return inception_forward(x, params_from_tensors(tensors, ch1x1, relu, cat_order))


@inception_block.register_fake
def _(x, w_point, b_point, w_red3, b_red3, w_conv3, b_conv3, w_red5, b_red5, w_conv5, b_conv5,
      ch1x1, relu, cat_order):
    channels = w_point.shape[1] + w_conv3.shape[2] + w_conv5.shape[2]
    n, _, h, w = x.shape
    return x.new_empty((n, channels, h, w)).contiguous(memory_format=output_memory_format(x))


def _setup_context(ctx, inputs, output):
    x, *tensors = inputs[:11]
    ctx.ch1x1, ctx.relu, ctx.cat_order = inputs[11:]
    ctx.save_for_backward(x, relu_mask(output, ctx.relu), *tensors)


def _backward(ctx, grad_out):
    """(grad_x, grads of the WEIGHT_FIELDS tensors, each in its tensor's dtype, and None for
    ch1x1, relu and cat_order)."""
    x, out_mask, *tensors = ctx.saved_tensors
    params = params_from_tensors(tensors, ctx.ch1x1, ctx.relu, ctx.cat_order)
    gx, grads = inception_backward(grad_out, x, out_mask, params)
    weight_grads = (g.to(t.dtype) for g, t in zip(kernel_layout_grads(grads), tensors))
    return (gx, *weight_grads, None, None, None)


inception_block.register_autograd(_backward, setup_context=_setup_context)


class FusedInceptionFunction(torch.autograd.Function):
    """The fused block as a plain autograd.Function: a thin shim over the custom op.

    ``FusedInceptionFunction.apply(x, params)`` with ``params`` an InceptionParams whose tensors
    may require grad returns the block's output ``[N, C_total, H, W]``; backward gives gradients
    for x and every params tensor. Forward is the op, and ``setup_context``/``backward`` are the
    op's own (the Function's inputs are the op's arguments), so the two cannot drift apart.
    Modules call the op (``inception_block``); the Function is for code that composes
    autograd.Functions.
    """

    @staticmethod
    def forward(x: Tensor, *op_args) -> Tensor:
        return inception_block(x, *op_args)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)

    @classmethod
    def apply(cls, x: Tensor, params: InceptionParams) -> Tensor:  # type: ignore[override]
        # the params' tensors are passed as the op's arguments, so autograd sees them as inputs
        return super().apply(x, *op_arguments(params))
