"""Backward of the fused Inception block, from the block input and output only.

The forward saves x and the ReLU mask of its output (not out <= 0: PyTorch's ReLU backward,
threshold_backward on the output, passes the gradient wherever the output is not <= 0, so at
positive and at NaN outputs; relu(z) <= 0 exactly where z <= 0. One byte per element, and the
output itself stays free for in-place ops downstream). Only the two 1x1 reductions and the
max-pool indices are recomputed, so no reduced intermediate outlives the forward. dgrad/wgrad run on PyTorch's
convolution_backward; the concat's slice gradients, ReLU masks and max-pool gradient routing are
exact.

Written with explicit aten backward ops (no autograd.grad inside) so that AOTAutograd can trace it
under torch.compile.
"""

from __future__ import annotations

import torch

from .folding import UNIT_NAMES
from .params import CAT_ORDER, WEIGHT_FIELDS, InceptionParams

Tensor = torch.Tensor
aten = torch.ops.aten


def conv_grads(grad: Tensor, inp: Tensor, weight: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """(grad_input, (grad_weight, grad_bias)) of conv2d(inp, weight, bias), stride 1, same padding;
    grad_bias in the biases' dtype (float32, float64 for float64: params.InceptionParams)."""
    pad = weight.shape[-1] // 2
    gi, gw, gb = aten.convolution_backward(
        grad, inp, weight, [weight.shape[0]], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [True, True, True],
    )
    return gi, (gw, gb.to(torch.promote_types(gb.dtype, torch.float32)))


def relu_mask(out: Tensor, relu: bool) -> Tensor | None:
    """What the forward saves for the output ReLUs: where the gradient passes (``out`` > 0 or
    NaN, as in PyTorch's ReLU backward), or None without ReLU."""
    return ~(out <= 0) if relu else None


def relu_masked(grad: Tensor, activation: Tensor, relu: bool) -> Tensor:
    """``grad`` through a ReLU whose output is ``activation`` (passed where relu_mask passes it)."""
    return grad * ~(activation <= 0) if relu else grad


def inception_backward(
    grad_out: Tensor, x: Tensor, out_mask: Tensor | None, params: InceptionParams
) -> tuple[Tensor, dict[str, tuple[Tensor, Tensor]]]:
    """Gradients of the fused block.

    grad_out: [N, C_total, H, W]; out_mask: relu_mask(out) of the same shape (None without ReLU);
    x: [N, C_in, H, W]; params: the weights the forward ran with. Returns (grad_x, {unit: (grad_weight [C_out, C_in,
    k, k], grad_bias [C_out] in the biases' dtype)}) for the six units of fused_inception.folding.UNIT_NAMES.
    """
    relu = params.relu
    # contiguous: permuted views of the kernel layout send convolution_backward to slow paths
    conv = {name: (w.contiguous(), b) for name, (w, b) in params.to_conv_weights().items()}
    widths = dict(zip(CAT_ORDER, params.branch_channels))
    offsets = dict(zip(CAT_ORDER, params.branch_offsets))
    grad_out = grad_out.to(x.dtype)

    def branch_grad(name: str) -> Tensor:
        lo = offsets[name]
        g = grad_out[:, lo:lo + widths[name]]
        return g if out_mask is None else g * out_mask[:, lo:lo + widths[name]]

    grads: dict[str, tuple[Tensor, Tensor]] = {}
    gx, grads["branch1"] = conv_grads(branch_grad("branch1"), x, conv["branch1"][0])

    pooled, indices = aten.max_pool2d_with_indices(x, [3, 3], [1, 1], [1, 1])
    g_pooled, grads["pool_proj"] = conv_grads(branch_grad("pool_proj"), pooled, conv["pool_proj"][0])
    gx = gx + aten.max_pool2d_with_indices_backward(g_pooled, x, [3, 3], [1, 1], [1, 1], [1, 1], False, indices)

    for reduce, kxk in (("reduce3", "conv3"), ("reduce5", "conv5")):
        w_red, b_red = conv[reduce]
        # the reduced tensor, recomputed as the forward rounded it (x's dtype)
        reduced = aten.convolution(x, w_red, b_red.to(x.dtype), [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
        if relu:
            reduced = torch.relu(reduced)
        g_reduced, grads[kxk] = conv_grads(branch_grad(kxk), reduced, conv[kxk][0])
        g_x_red, grads[reduce] = conv_grads(relu_masked(g_reduced, reduced, relu), x, w_red)
        gx = gx + g_x_red
    return gx, grads


def kernel_layout_grads(grads: dict[str, tuple[Tensor, Tensor]]) -> tuple[Tensor, ...]:
    """The unit gradients in InceptionParams' layout, in WEIGHT_FIELDS order."""
    as_params = InceptionParams.from_conv_weights(*(grads[name] for name in UNIT_NAMES), relu=True,
                                                  dtype=grads["branch1"][0].dtype)
    return tuple(getattr(as_params, field) for field in WEIGHT_FIELDS)
