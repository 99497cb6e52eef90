"""Channel offsets written so that a tile's async copies allocate in L1.

An async copy (cp.async) of 16 bytes is emitted as ``cp.async.cg``, which bypasses L1; shorter
copies can only be ``cp.async.ca``, which allocates there (PTX ISA; SASS ``LDGSTS.E.BYPASS.128``
against ``LDGSTS.E.64``). Triton picks the copy width from its alignment analysis of the offsets,
and ``tl.load(..., cache_modifier=".ca")`` alone left its 16-byte copies ``.cg`` (triton 3.8). So
where a kernel re-reads overlapping rows (the pool taps of pointwise_pool, the k x k taps of
reduce_conv), it writes the channel offsets as runs of 8 bytes: the same values, copied 8 bytes at
a time into L1, so the overlapping loads that follow hit there instead of going to L2.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def l1_runs(k0, BLOCK: tl.constexpr, ELEM_BITS: tl.constexpr):
    """k0 + arange(BLOCK), in runs of 8 bytes of ``ELEM_BITS``-bit elements for triton's
    alignment analysis (the module docstring)."""
    tl.static_assert(ELEM_BITS <= 64, "an 8-byte run holds at least one element")
    RUN: tl.constexpr = 64 // ELEM_BITS
    k = tl.arange(0, BLOCK)
    return k0 + (k // RUN) * RUN + k % RUN
