"""Folded Inception-block weights in the layouts the kernels read, and BatchNorm folding.

PyTorch conv weights are [C_out, C_in, kh, kw]. The kernels want the GEMM K dimension (input
channels) first, so the layouts here are:

* ``w_point`` [C_in, ch1x1 + pool_proj]: columns [0, ch1x1) are branch 1, the rest the pool
  projection (both read the block input, so they share one launch);
* ``w_red3`` / ``w_red5`` [C_in, R]: the 1x1 reductions;
* ``w_conv3`` / ``w_conv5`` [k*k, R, C_out]: the k x k convs, tap-major (tap = kh*k + kw).

Weights are stored in the compute dtype (the input's), biases in float32 since the kernels add
them to the fp32 accumulator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

Tensor = torch.Tensor

# the four branches, named by their output conv unit, in GoogLeNet's concatenation order
CAT_ORDER: tuple[str, str, str, str] = ("branch1", "conv3", "conv5", "pool_proj")

# InceptionParams' tensor fields, in the order the custom op takes them
WEIGHT_FIELDS = ("w_point", "b_point", "w_red3", "b_red3", "w_conv3", "b_conv3",
                 "w_red5", "b_red5", "w_conv5", "b_conv5")


def branch_offsets(widths: Mapping[str, int], cat_order: Iterable[str]) -> dict[str, int]:
    """First output channel of each branch in the concatenated output: the branches (named as in
    CAT_ORDER) are laid side by side in ``cat_order``, each ``widths[name]`` channels wide."""
    start, offsets = 0, {}
    for name in cat_order:
        offsets[name] = start
        start += widths[name]
    return offsets


def fold_batch_norm(
    weight: Tensor,
    bias: Tensor | None,
    bn_weight: Tensor | None,
    bn_bias: Tensor | None,
    running_mean: Tensor,
    running_var: Tensor,
    eps: float,
    compute_dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Fold an eval-mode BatchNorm2d into the conv before it.

    weight: [C_out, C_in, kh, kw]; bias: [C_out] or None; BN tensors: [C_out] (affine ones may be
    None for affine=False). Returns (w', b') with s = gamma / sqrt(var + eps), w' = w * s,
    b' = (b - mean) * s + beta, computed in ``compute_dtype`` and returned in float32 (float64
    for float64 weights).
    Differentiable with respect to every input (call it under torch.no_grad() for weights that
    need no gradient; float64 there costs nothing that matters, float32 keeps a per-step fold on
    the autograd path cheap).
    """
    def cast(t: Tensor) -> Tensor:
        return t.to(compute_dtype)

    w = cast(weight)
    c_out = w.shape[0]
    b = cast(bias) if bias is not None else torch.zeros(c_out, dtype=compute_dtype, device=w.device)
    gamma = cast(bn_weight) if bn_weight is not None else torch.ones_like(b)
    beta = cast(bn_bias) if bn_bias is not None else torch.zeros_like(b)
    scale = gamma / torch.sqrt(cast(running_var) + eps)
    w_folded = w * scale.view(-1, 1, 1, 1)
    b_folded = (b - cast(running_mean)) * scale + beta
    out_dtype = torch.promote_types(weight.dtype, torch.float32)
    return w_folded.to(out_dtype), b_folded.to(out_dtype)


def _bias_or_zeros(bias: Tensor | None, weight: Tensor) -> Tensor:
    """The bias in float32 (float64 stays float64), zeros when the conv has none."""
    if bias is None:
        return torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
    return bias.to(torch.promote_types(bias.dtype, torch.float32))


def _pointwise(weight: Tensor) -> Tensor:
    """[C_out, C_in, 1, 1] -> [C_in, C_out]."""
    if weight.dim() != 4 or weight.shape[2:] != (1, 1):
        raise ValueError(f"expected a 1x1 conv weight [C_out, C_in, 1, 1], got shape {tuple(weight.shape)}")
    return weight[:, :, 0, 0].t()


def _taps(weight: Tensor) -> Tensor:
    """[C_out, R, k, k] -> [k*k, R, C_out]."""
    c_out, r, kh, kw = weight.shape
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"expected an odd square k x k conv weight, got shape {tuple(weight.shape)}")
    return weight.permute(2, 3, 1, 0).reshape(kh * kw, r, c_out)


@dataclass
class InceptionParams:
    """One block's folded weights in kernel layout (see the module docstring)."""

    w_point: Tensor
    b_point: Tensor
    w_red3: Tensor
    b_red3: Tensor
    w_conv3: Tensor
    b_conv3: Tensor
    w_red5: Tensor
    b_red5: Tensor
    w_conv5: Tensor
    b_conv5: Tensor
    ch1x1: int
    relu: bool
    # the branches in concatenation order, named by their output conv unit
    cat_order: tuple[str, str, str, str] = CAT_ORDER

    def __post_init__(self) -> None:
        if sorted(self.cat_order) != sorted(CAT_ORDER):
            raise ValueError(f"cat_order must be a permutation of {CAT_ORDER}, got {self.cat_order}")

    @property
    def in_channels(self) -> int:
        return self.w_point.shape[0]

    @property
    def pool_proj(self) -> int:
        return self.w_point.shape[1] - self.ch1x1

    @property
    def k3(self) -> int:
        return _side(self.w_conv3)

    @property
    def k5(self) -> int:
        return _side(self.w_conv5)

    @property
    def branch_channels(self) -> tuple[int, int, int, int]:
        """Output channels of the 1x1, 3x3, 5x5 and pool branches."""
        return (self.ch1x1, self.w_conv3.shape[2], self.w_conv5.shape[2], self.pool_proj)

    @property
    def out_channels(self) -> int:
        return sum(self.branch_channels)

    @property
    def branch_offsets(self) -> tuple[int, int, int, int]:
        """First output channel of the 1x1, 3x3, 5x5 and pool branches, following ``cat_order``."""
        offsets = branch_offsets(dict(zip(CAT_ORDER, self.branch_channels)), self.cat_order)
        return tuple(offsets[name] for name in CAT_ORDER)

    @property
    def dtype(self) -> torch.dtype:
        return self.w_point.dtype

    @property
    def device(self) -> torch.device:
        return self.w_point.device

    @classmethod
    def from_conv_weights(
        cls,
        branch1: tuple[Tensor, Tensor | None],
        reduce3: tuple[Tensor, Tensor | None],
        conv3: tuple[Tensor, Tensor | None],
        reduce5: tuple[Tensor, Tensor | None],
        conv5: tuple[Tensor, Tensor | None],
        pool_proj: tuple[Tensor, Tensor | None],
        relu: bool = True,
        dtype: torch.dtype | None = None,
        cat_order: tuple[str, str, str, str] | None = None,
    ) -> "InceptionParams":
        """Build from (weight, bias) pairs in PyTorch conv layout (BN already folded, bias may be None).

        Differentiable: gradients reaching the result's tensors flow back to the given weights.

        ``dtype`` is the compute dtype the weights are cast to (default: the weights' own);
        ``cat_order`` the branches' order in the output (default: 1x1, 3x3, 5x5, pool).
        """
        dtype = dtype or branch1[0].dtype
        c1 = branch1[0].shape[0]
        w_point = torch.cat([_pointwise(branch1[0]), _pointwise(pool_proj[0])], dim=1)
        b_point = torch.cat([_bias_or_zeros(branch1[1], branch1[0]), _bias_or_zeros(pool_proj[1], pool_proj[0])])

        def weight(w: Tensor) -> Tensor:
            return w.to(dtype).contiguous()

        return cls(
            w_point=weight(w_point), b_point=b_point.contiguous(),
            w_red3=weight(_pointwise(reduce3[0])), b_red3=_bias_or_zeros(reduce3[1], reduce3[0]),
            w_conv3=weight(_taps(conv3[0])), b_conv3=_bias_or_zeros(conv3[1], conv3[0]),
            w_red5=weight(_pointwise(reduce5[0])), b_red5=_bias_or_zeros(reduce5[1], reduce5[0]),
            w_conv5=weight(_taps(conv5[0])), b_conv5=_bias_or_zeros(conv5[1], conv5[0]),
            ch1x1=c1, relu=relu, cat_order=cat_order or CAT_ORDER,
        )

    def to_conv_weights(self) -> dict[str, tuple[Tensor, Tensor]]:
        """The same weights back in PyTorch conv layout: name -> (weight [C_out, C_in, k, k], bias)."""
        c1 = self.ch1x1

        def pointwise(w: Tensor) -> Tensor:
            return w.t()[:, :, None, None]

        def square(w: Tensor) -> Tensor:
            k = _side(w)
            return w.reshape(k, k, w.shape[1], w.shape[2]).permute(3, 2, 0, 1)

        return {
            "branch1": (pointwise(self.w_point[:, :c1]), self.b_point[:c1]),
            "reduce3": (pointwise(self.w_red3), self.b_red3),
            "conv3": (square(self.w_conv3), self.b_conv3),
            "reduce5": (pointwise(self.w_red5), self.b_red5),
            "conv5": (square(self.w_conv5), self.b_conv5),
            "pool_proj": (pointwise(self.w_point[:, c1:]), self.b_point[c1:]),
        }

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "InceptionParams":
        """A copy with weights in ``dtype`` (biases stay float32) on ``device``."""
        fields = {}
        for name in ("w_point", "w_red3", "w_conv3", "w_red5", "w_conv5"):
            fields[name] = getattr(self, name).to(device=device, dtype=dtype).contiguous()
        for name in ("b_point", "b_red3", "b_conv3", "b_red5", "b_conv5"):
            fields[name] = getattr(self, name).to(device=device)
        return InceptionParams(**fields, ch1x1=self.ch1x1, relu=self.relu, cat_order=self.cat_order)


def _side(taps: Tensor) -> int:
    k = int(round(taps.shape[0] ** 0.5))
    assert k * k == taps.shape[0], taps.shape
    return k
