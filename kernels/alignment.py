"""The aligned channels_last specialization: the one launch shape both kernels compile larger tiles
or shorter loops for.

Triton's JIT specializes each runtime int (an int equal to 1 becomes a constexpr; one divisible by
16 gets a divisibility hint) and each pointer (16-byte aligned). A launch is *aligned* when its
channel strides are 1 (channels_last), every int is an int32, every int except a kernel's few
shape-dependent ones (``free``: pixel counts, image sizes, grid bookkeeping) is divisible by 16 and
every tensor is 16-byte aligned. Then the compiler knows every channel offset and stride is a
multiple of 16 elements, vectorizes the channel loads and makes them async copies with fewer
address registers, which is what lets the kernels' aligned tiles compile without spilling.
GoogLeNet's launches on channels_last input are all aligned (every channel count in it is a
multiple of 16). compile-check compiles each kernel's aligned tiles as exactly this one
specialization (tools/compile_check/aot.py).
"""

from __future__ import annotations

import torch


def aligned_channels_last(ints: dict[str, int], tensors: tuple[torch.Tensor, ...], free: tuple[str, ...],
                          unit: tuple[str, ...]) -> bool:
    """Whether a launch with these runtime ints (the kernel's parameter names) and tensors is the
    aligned specialization: the ``unit`` ints (channel strides) 1, every int an int32 (triton
    specializes larger ones as i64, which compile-check does not compile), every int outside
    ``free`` and ``unit`` divisible by 16, and every tensor 16-byte aligned."""
    if any(ints[n] != 1 for n in unit) or not all(-2**31 <= v < 2**31 for v in ints.values()):
        return False
    hinted = [v for n, v in ints.items() if n not in free + unit]
    return all(v % 16 == 0 for v in hinted) and all(t.data_ptr() % 16 == 0 for t in tensors)
