"""Rounding of float32 dot operands to TF32, shared by both kernels.

A TF32 tensor-core dot reads only the top 19 bits of each float32 operand (sign, 8 exponent bits,
10 mantissa bits): Triton's ``input_precision="tf32"`` hands it the float32 registers as they are,
so the low 13 bits are truncated, always towards zero. cuDNN and cuBLAS round each operand to the
nearest TF32 value first (``cvt.rna.tf32.f32``). Truncation biases every product the same way,
and on an H200 the kernels' TF32 blocks came out at 1.0-1.1e-3 relative error against cuDNN's
2.9-3.4e-4 (benchmarks/results/nvidia-h200-20261130-2337.md). The kernels round their operands
here before a TF32 dot, as cuDNN does, so the truncation drops only zero bits. In registers
(``round_tf32``): pointwise_pool's input and pooled tiles, and the reduced activations reduce_conv
writes to its scratch. Before the launches (``round_tf32_tensor``, by the caller: the forward
rounds them once per block): the weights of both kernels and reduce_conv's input (rounding those
tiles in the kernel as well spilled reduce_conv's sm_80 TF32 variants 8-16 B).
"""

import torch
import triton
import triton.language as tl


@triton.jit
def round_tf32(x, INPUT_PRECISION: tl.constexpr):
    """``x`` (float32) rounded to the nearest TF32 value, ties away from zero (cvt.rna's rule),
    when INPUT_PRECISION is "tf32"; else ``x`` unchanged. Adding half a TF32 unit (bit 12) to the
    magnitude bits and clearing the 13 low bits (unsigned, so the sign bit stays) rounds the
    magnitude: +-Inf stays Inf, a finite value above the largest TF32 one rounds to Inf (as cvt.rna
    does), and a NaN is kept as it is (the addition could carry a NaN's payload into Inf or the
    sign)."""
    if INPUT_PRECISION == "tf32":
        # a float64 accumulator (float64 biases promote it) is rounded through float32
        x = x.to(tl.float32)
        bits = x.to(tl.uint32, bitcast=True)
        # shifts, not a 0xFFFFE000 mask, which is wider than int32 and would promote to int64
        rounded = (((bits + 0x1000) >> 13) << 13).to(tl.float32, bitcast=True)
        x = tl.where(x != x, x, rounded)
    return x


def round_tf32_tensor(t: torch.Tensor) -> torch.Tensor:
    """A float32 tensor rounded as ``round_tf32`` rounds (a new tensor, ``t``'s shape and strides;
    NaN kept as it is), in four elementwise passes on 32-bit integers. Not differentiable: the
    kernels' backward is its own (backward.py)."""
    with torch.no_grad():
        # int32 two's complement: adding 0x1000 to the bits of a finite value or an Inf cannot
        # overflow (only NaN encodings lie that close to 2**31), and -0x2000 clears the 13 low bits
        rounded = ((t.view(torch.int32) + 0x1000) & -0x2000).view(torch.float32)
        return torch.where(torch.isnan(t), t, rounded)
