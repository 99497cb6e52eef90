"""Shape arithmetic of GoogLeNet for the plan: integer helpers, conv and pool output sizes, each
Inception block's input shape."""

from __future__ import annotations

from fused_inception.spec import BLOCK_NAMES, InceptionSpec, googlenet_spec
from fused_inception.stem import pool_output_size


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    return cdiv(a, b) * b


def conv_out(size: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output size of a convolution."""
    return (size + 2 * pad - k) // stride + 1


# output size of a max/avg pool, with PyTorch's ceil_mode rule (the library's, which the fused
# stem allocates its output with)
pool_out = pool_output_size


def block_shapes(variant: str, size: int = 224) -> dict[str, tuple[InceptionSpec, int, int]]:
    """(spec, H, W) of each Inception block's input for a square input of ``size``."""
    h = conv_out(size, 7, 2, 3)
    h = pool_out(h, 3, 2, 0, True)
    h = conv_out(conv_out(h, 1), 3, 1, 1)
    h = pool_out(h, 3, 2, 0, True)
    out = {}
    for name in BLOCK_NAMES:
        if name == "4a":
            h = pool_out(h, 3, 2, 0, True)
        if name == "5a":
            h = pool_out(h, 3 if variant == "paper" else 2, 2, 0, True)
        out[name] = (googlenet_spec(name, variant), h, h)
    return out
