"""One kernel launch and its modelled cost (``Launch``): what each of its figures counts.

What is counted
---------------
* ``flops``: useful work, 2 x multiply-accumulates of the convolutions and the linear layer, the
  same count as docs/DESIGN.md §4 (1.50 GMAC per image for the torchvision variant). Elementwise,
  normalisation, pooling and copy launches count 0 FLOPs: they are memory-bound by a wide margin.
* ``exec_flops`` (fused launches): the MACs the fused kernels' loops execute over the pixels.
  Both kernels tile the flattened pixel index p = (n*H + h)*W + w, BLOCK_M consecutive pixels per
  tile (tiles cross row and image boundaries), so M = N*H*W is only rounded up to BLOCK_M (the
  last tile). The reduce -> k x k kernel recomputes the 1x1 reduction on each tile's run of pixels
  [p0 - OFF, p0 + BLOCK_M + OFF), OFF = PAD*W + PAD, PAD = k//2, rounded up to BLOCK_HALO rows
  (``ReduceConvConfig.halo_rows(k, W)``); run rows outside the tensor are masked, not skipped, so
  they count, once per work item (a tile and one of its column splits, see ``reduce_conv_grid``).
  ``padded_flops`` adds the channel padding of the ``tl.dot`` blocks (channel counts
  rounded up to BLOCK_K / BLOCK_R / BLOCK_RK / BLOCK_N): the work the tensor cores (or, for fp32 IEEE dots,
  the FMA units) are actually issued. Eager launches are counted at their useful FLOPs (cuDNN's own
  padding and tiling waste is unknown here, which favours eager).
* Configs: the kernels' pickers take the dtype and the dot precision (``dot_precision``): "tf32"
  for float32 when TF32 is allowed (``torch.backends.cudnn.allow_tf32``, PyTorch's default; the
  ``tf32`` flag here), else "ieee"; float32 IEEE gets the smaller "fma" reduce -> k x k config.
* ``hbm_bytes``: the minimal HBM traffic of the launch: every input read once, weights read once,
  every output written once (an in-place op reads and writes its tensor). Between launches every
  tensor is assumed to go through HBM.
* ``halo_bytes`` (reduce -> k x k launches): the extra input loads of the tile halos, beyond reading
  the input once: 2*OFF pixels per tile, less those outside the tensor, times C_in. Neighbouring
  tiles run at the same time, so these should mostly hit L2; they are kept out of ``hbm_bytes``
  and counted in ``hbm_bytes_high``.
* ``l2_bytes`` (reduce -> k x k launches): traffic to the per-program scratch (the reduced tensor on
  the tile's run of pixels): halo_rows x R_pad written once per work item; BLOCK_M x BLOCK_RK read
  per (tap, reduced-channel block) iteration of every BLOCK_N block of output channels.
  Its footprint (``scratch_bytes`` = programs x halo rows x padded reduced channels) is a few MB,
  far under the 50 MB L2, so it is counted as L2 traffic, not HBM.
* ``hbm_bytes_high``: a pessimistic HBM figure for the fused launches: adds the halo re-reads, one
  write-back of the scratch footprint and, when the block input is larger than half the L2 and the
  pointwise grid walks all of M for one column tile before the next (commit d2e917c's grid), the
  pointwise kernel's re-read of the input for every column tile. For eager launches it equals
  ``hbm_bytes``.
* ``cache_reread_bytes``: every load beyond the minimal that goes through L1/L2 (input re-reads per
  reduced-channel block, pool taps, halo, column tiles; weights reloaded per tile or per chunk). Not in
  this roofline (there is no datasheet L2 bandwidth); the latency model (``latency``) charges
  every load of the kernels' loops at an assumed L2 bandwidth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from fused_inception.dtypes import dtype_from_name

BIAS_BYTES = 4  # the fused kernels keep (folded) biases in float32


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a kernel dtype's full name (\"bfloat16\" -> 2)."""
    return dtype_from_name(dtype).itemsize


@dataclass(frozen=True)
class Launch:
    """One kernel launch and its modelled cost. See this module's docstring for each field."""

    network: str  # "eager" or "fused"
    block: str  # "stem", "3a".."5b", "pool3", "pool4", "head"
    name: str  # module-style name and shape, e.g. "branch2.1.conv 3x3 96>128"
    kind: str  # conv, bias_add, bn, relu, maxpool, lrn, avgpool, cat, linear, pointwise_pool, reduce_conv,
    # stem_epilogue (the fused stem's BN + ReLU [+ max-pool])
    flops: int  # useful FLOPs (2 x MAC)
    hbm_bytes: int  # minimal HBM traffic
    math: str = "none"  # "conv", "matmul" or "none": which peak its FLOPs run at
    exec_flops: int = -1  # FLOPs the loops execute (halo runs, BLOCK_HALO/BLOCK_M rounding); -1: = flops
    padded_flops: int = -1  # exec_flops with channel padding to the dot blocks; -1: = exec_flops
    hbm_bytes_high: int = -1  # pessimistic HBM traffic; -1: = hbm_bytes
    halo_bytes: int = 0  # extra input loads of tile halos (cache level)
    l2_bytes: int = 0  # scratch traffic kept in L2
    scratch_bytes: int = 0  # scratch footprint
    cache_reread_bytes: int = 0  # all loads beyond the minimal (L1/L2 level)
    detail: str = ""  # shapes, config

    def __post_init__(self) -> None:
        if self.exec_flops < 0:
            object.__setattr__(self, "exec_flops", self.flops)
        if self.padded_flops < 0:
            object.__setattr__(self, "padded_flops", self.exec_flops)
        if self.hbm_bytes_high < 0:
            object.__setattr__(self, "hbm_bytes_high", self.hbm_bytes)

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Launch":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
