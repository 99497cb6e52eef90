"""The configuration of one Inception block, shared by the reference block and the fused kernels.

An Inception block maps an input of ``in_channels`` to the channel-wise concatenation of four
branches, in this order::

    [ 1x1 conv (ch1x1)
    | 1x1 conv (ch3x3red) -> k3 x k3 conv (ch3x3)
    | 1x1 conv (ch5x5red) -> k5 x k5 conv (ch5x5)
    | 3x3/1 max-pool (pad 1, -inf padding) -> 1x1 conv (pool_proj) ]

Every conv is optionally followed by BatchNorm2d (``batch_norm``, eps ``bn_eps``) and ReLU
(``relu``); convs carry a bias when ``conv_bias`` is set. k×k convs use stride 1 and "same" zero
padding (k-1)/2, so every branch keeps the input's H×W.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InceptionSpec:
    """Channel counts and options of one Inception block (see the module docstring)."""

    in_channels: int
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int
    k3: int = 3
    k5: int = 5
    batch_norm: bool = False
    conv_bias: bool = True
    relu: bool = True
    bn_eps: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"InceptionSpec.{name} must be a positive int, got {value!r}")
        for name in ("k3", "k5"):
            k = getattr(self, name)
            if not isinstance(k, int) or k < 1 or k > 7 or k % 2 == 0:
                raise ValueError(f"InceptionSpec.{name} must be an odd int in 1..7, got {k!r}")

    @property
    def out_channels(self) -> int:
        """Channels of the concatenated output: ch1x1 + ch3x3 + ch5x5 + pool_proj."""
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


# GoogLeNet's variants: "paper" (Szegedy et al. 2014) and "torchvision" (torchvision.models.googlenet)
VARIANTS: tuple[str, str] = ("paper", "torchvision")

# GoogLeNet's nine blocks (Szegedy et al. 2014, Table 1), as
# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), with the spatial size at 224x224 input.
GOOGLENET_BLOCKS: dict[str, tuple[tuple[int, int, int, int, int, int, int], int]] = {
    "3a": ((192, 64, 96, 128, 16, 32, 32), 28),
    "3b": ((256, 128, 128, 192, 32, 96, 64), 28),
    "4a": ((480, 192, 96, 208, 16, 48, 64), 14),
    "4b": ((512, 160, 112, 224, 24, 64, 64), 14),
    "4c": ((512, 128, 128, 256, 24, 64, 64), 14),
    "4d": ((512, 112, 144, 288, 32, 64, 64), 14),
    "4e": ((528, 256, 160, 320, 32, 128, 128), 14),
    "5a": ((832, 256, 160, 320, 32, 128, 128), 7),
    "5b": ((832, 384, 192, 384, 48, 128, 128), 7),
}
# their names in network order, "3a" .. "5b"
BLOCK_NAMES: tuple[str, ...] = tuple(GOOGLENET_BLOCKS)


def googlenet_spec(name: str, variant: str) -> InceptionSpec:
    """The InceptionSpec of GoogLeNet block ``name`` ("3a".."5b") for ``variant``.

    ``"paper"``: conv + bias + ReLU, a true 5x5. ``"torchvision"``: conv (no bias) + BN(eps 1e-3) +
    ReLU, and a 3x3 conv in the "5x5" branch (torchvision issue 906).
    """
    if name not in GOOGLENET_BLOCKS:
        raise ValueError(f"unknown GoogLeNet block {name!r}; expected one of {list(GOOGLENET_BLOCKS)}")
    channels, _ = GOOGLENET_BLOCKS[name]
    if variant == "paper":
        return InceptionSpec(*channels, k5=5, batch_norm=False, conv_bias=True)
    if variant == "torchvision":
        return InceptionSpec(*channels, k5=3, batch_norm=True, conv_bias=False, bn_eps=1e-3)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
