"""The aten tactic of one fused Inception block: BN folded, every conv on PyTorch's own kernels.

Four convolutions instead of six, and no BatchNorm:

* the three 1x1 convs that read the block input (branch 1, the k3 and k5 reductions) run as ONE
  conv2d with their weights concatenated along C_out, [ch1x1 + R3 + R5, C_in, 1, 1], so the input
  is read once and the GEMM is wide; its output is split along channels;
* the k3 x k3 and k5 x k5 convs read their channel slice of that output;
* the 3x3/1 max-pool (padding 1 with -inf, as nn.MaxPool2d) feeds the 1x1 pool projection;
* ReLU (when the block has it) runs in place on each conv's fresh output;
* the four results are concatenated in ``params.cat_order`` into an output in
  ``block_io.output_memory_format(x)`` (channels_last exactly when the input is only channels_last);
  on the CPU all of it computes in channels_last (``block_io.aten_compute_layout``).

Numerics: each conv accumulates as cuDNN/oneDNN does for the dtype and rounds its result to the
input dtype, so the reduced tensors are rounded to the input dtype before the k x k convs, as the
Triton kernels' scratch rounds them. Pure (tensors in, tensors out) and differentiable by autograd
with respect to ``x`` and to the InceptionParams tensors it was built from, so a module can fold BN
on the autograd path and train through it.

Use ``aten_weights(params)`` once per set of folded weights (a module caches it beside its folded
InceptionParams; rebuilding the conv layouts costs a copy of every weight per call, which is a
noticeable share of a batch-1 block on the CPU), then ``aten_inception_forward(x, weights)``. On
the autograd path (BN folded in every call), ``aten_weights_from_units`` folds straight into the
conv layout, without the round trip through InceptionParams' kernel layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .folding import UNIT_NAMES, ConvUnit, check_units, fold_conv_unit
from .block_io import aten_compute_layout, check_input_shape, output_memory_format
from .params import CAT_ORDER, InceptionParams

Tensor = torch.Tensor


@dataclass(frozen=True)
class AtenWeights:
    """One block's folded weights in PyTorch conv layout ([C_out, C_in, k, k], contiguous, in the
    compute dtype; biases [C_out] in the same dtype, as conv2d wants them).

    ``w_input``: the three 1x1 convs that read the block input, stacked along C_out in the order
    branch 1, reduce3, reduce5 (``split`` gives their widths); ``w_pool``: the pool projection.
    """

    w_input: Tensor
    b_input: Tensor
    split: tuple[int, int, int]
    w_conv3: Tensor
    b_conv3: Tensor
    w_conv5: Tensor
    b_conv5: Tensor
    w_pool: Tensor
    b_pool: Tensor
    relu: bool
    cat_order: tuple[str, str, str, str]

    @property
    def in_channels(self) -> int:
        return self.w_input.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.w_input.dtype

    @property
    def device(self) -> torch.device:
        return self.w_input.device


def aten_weights(params: InceptionParams) -> AtenWeights:
    """``params`` (kernel layout, params.py) in the aten tactic's conv layout. Differentiable:
    gradients reaching the result flow back to ``params``' tensors."""
    conv = params.to_conv_weights()
    return _stack({name: (w.contiguous(), b.to(params.dtype)) for name, (w, b) in conv.items()},
                  params.relu, params.cat_order)


def aten_weights_from_units(units: Mapping[str, ConvUnit], relu: bool, dtype: torch.dtype,
                            cat_order: tuple[str, str, str, str] = CAT_ORDER,
                            fold_dtype: torch.dtype = torch.float32) -> AtenWeights:
    """Fold a block's six (conv, bn-or-None) units (folding.py) into AtenWeights in ``dtype``,
    the BN fold computed in ``fold_dtype``. Differentiable with respect to the modules'
    parameters: the frozen-BN training path of the aten tactic."""
    check_units(units)
    folded = {}
    for name in UNIT_NAMES:
        w, b = fold_conv_unit(*units[name], compute_dtype=fold_dtype)
        folded[name] = (w.to(dtype), b.to(dtype))
    return _stack(folded, relu, cat_order)


def _stack(conv: Mapping[str, tuple[Tensor, Tensor]], relu: bool, cat_order: tuple[str, str, str, str]) -> AtenWeights:
    """AtenWeights from the six units' (weight [C_out, C_in, k, k], bias) in the compute dtype."""
    stacked = [conv[name] for name in ("branch1", "reduce3", "reduce5")]
    return AtenWeights(
        w_input=torch.cat([w for w, _ in stacked]), b_input=torch.cat([b for _, b in stacked]),
        split=tuple(w.shape[0] for w, _ in stacked),
        w_conv3=conv["conv3"][0], b_conv3=conv["conv3"][1], w_conv5=conv["conv5"][0], b_conv5=conv["conv5"][1],
        w_pool=conv["pool_proj"][0], b_pool=conv["pool_proj"][1], relu=relu, cat_order=cat_order,
    )


def check_aten_inputs(x: Tensor, weights: AtenWeights) -> None:
    """TypeError/ValueError unless ``x`` is a 4-D floating tensor with the weights' channels,
    dtype and device."""
    check_input_shape(x, weights.in_channels)
    if x.dtype != weights.dtype:
        raise TypeError(f"input dtype {x.dtype} does not match the weights' dtype {weights.dtype}")
    if x.device != weights.device:
        raise ValueError(f"input is on {x.device} but the weights are on {weights.device}")


def aten_inception_forward(x: Tensor, weights: AtenWeights) -> Tensor:
    """One Inception block on aten ops (eval semantics: BN folded into ``weights``).

    x: [N, C_in, H, W], any strides, dtype and device of ``weights``. Returns a new
    [N, C_out, H, W] tensor, the branches in ``weights.cat_order``, in
    ``block_io.output_memory_format(x)``.
    """
    check_aten_inputs(x, weights)
    out_format = output_memory_format(x)
    x = aten_compute_layout(x)

    def act(t: Tensor) -> Tensor:
        # in place: each t is a conv's own fresh output, and conv backward needs its input, not
        # its output (ReLU's backward reads the result, which is what stays)
        return t.relu_() if weights.relu else t

    k3, k5 = weights.w_conv3.shape[-1], weights.w_conv5.shape[-1]
    branch1, red3, red5 = act(F.conv2d(x, weights.w_input, weights.b_input)).split(weights.split, dim=1)
    results = {
        "branch1": branch1,
        "conv3": act(F.conv2d(red3, weights.w_conv3, weights.b_conv3, padding=k3 // 2)),
        "conv5": act(F.conv2d(red5, weights.w_conv5, weights.b_conv5, padding=k5 // 2)),
        "pool_proj": act(F.conv2d(F.max_pool2d(x, 3, 1, 1), weights.w_pool, weights.b_pool)),
    }
    out = torch.cat([results[name] for name in weights.cat_order], dim=1)
    return out.contiguous(memory_format=out_format)


def aten_forward(x: Tensor, params: InceptionParams) -> Tensor:
    """aten_inception_forward with the conv layouts built from ``params`` in the call (the
    autograd path: gradients reach ``params``' tensors)."""
    return aten_inception_forward(x, aten_weights(params))

