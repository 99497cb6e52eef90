"""A launch-by-launch cost model of GoogLeNet inference, eager PyTorch vs the fused Inception blocks.

This is shape arithmetic only: nothing is allocated and no model is built, so it runs in
milliseconds on any machine. It is our performance evidence where no GPU is at hand, so every
number below says what it assumes.

The pieces, one file each: ``gpus`` (datasheet peaks), ``shapes`` (shape arithmetic), ``launches``
(one launch and what its figures count), ``eager`` (the eager network's launches), ``fused`` (the
fused network's: the blocks' launches and the fused stem), ``roofline`` (time per launch and per
network). This module puts them
together: per-block summaries, the assumptions, and ``build_plan``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from fused_inception.tools.plan.eager import eager_launches
from fused_inception.tools.plan.fused import fused_launches, modelled_dot_precision
from fused_inception.tools.plan.gpus import GPUS
from fused_inception.tools.plan.launches import Launch, dtype_bytes
from fused_inception.tools.plan.roofline import DEFAULT_LAUNCH_OVERHEAD_US, Roofline, roofline
from fused_inception.tools.plan.shapes import block_shapes


@dataclass(frozen=True)
class BlockSummary:
    """Eager vs fused cost of one group of launches (an Inception block, or stem/pools/head)."""

    block: str
    shape: str  # "HxW Cin>Cout" for Inception blocks
    input_bytes: int  # size of the block's input activation
    mmac_per_image: float  # useful MACs per image, millions
    eager_launches: int
    fused_launches: int
    eager_hbm_bytes: int
    fused_hbm_bytes: int
    fused_hbm_bytes_high: int
    useful_flops: int
    fused_exec_flops: int
    fused_padded_flops: int
    halo_bytes: int
    l2_bytes: int
    scratch_bytes: int  # largest scratch footprint of the block's launches

    @property
    def bytes_ratio(self) -> float:
        return self.eager_hbm_bytes / self.fused_hbm_bytes if self.fused_hbm_bytes else float("nan")

    @property
    def exec_overhead(self) -> float:
        return self.fused_exec_flops / self.useful_flops - 1 if self.useful_flops else 0.0

    @property
    def padded_overhead(self) -> float:
        return self.fused_padded_flops / self.useful_flops - 1 if self.useful_flops else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(bytes_ratio=self.bytes_ratio, exec_overhead=self.exec_overhead, padded_overhead=self.padded_overhead)
        return d


GROUP_ORDER = ("stem", "3a", "3b", "pool3", "4a", "4b", "4c", "4d", "4e", "pool4", "5a", "5b", "head")


def block_summaries(eager: list[Launch], fused: list[Launch], variant: str, batch: int, size: int,
                    dtype: str) -> list[BlockSummary]:
    """One row per launch group, in forward order."""
    shapes = block_shapes(variant, size)
    e = dtype_bytes(dtype)
    rows = []
    for group in GROUP_ORDER:
        el = [l for l in eager if l.block == group]
        fl = [l for l in fused if l.block == group]
        if not el and not fl:
            continue
        if group in shapes:
            spec, h, w = shapes[group]
            shape = f"{h}x{w} {spec.in_channels}>{spec.out_channels}"
            in_bytes = batch * spec.in_channels * h * w * e
        else:
            shape, in_bytes = "", 0
        useful = sum(l.flops for l in el)
        rows.append(BlockSummary(
            group, shape, in_bytes, useful / 2 / batch / 1e6, len(el), len(fl),
            sum(l.hbm_bytes for l in el), sum(l.hbm_bytes for l in fl), sum(l.hbm_bytes_high for l in fl),
            useful, sum(l.exec_flops for l in fl), sum(l.padded_flops for l in fl),
            sum(l.halo_bytes for l in fl), sum(l.l2_bytes for l in fl), max((l.scratch_bytes for l in fl), default=0),
        ))
    return rows


@dataclass
class Plan:
    """Everything ``python -m fused_inception plan`` reports."""

    variant: str
    batch: int
    size: int
    dtype: str
    tf32: bool
    launch_overhead_us: float
    l2_tbps: float | None
    eager: list[Launch]
    fused: list[Launch]
    blocks: list[BlockSummary]
    rooflines: list[Roofline]  # per GPU: eager, fused (minimal bytes), "fused-high" (hbm_bytes_high)
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        totals = {net: _totals(ls) for net, ls in (("eager", self.eager), ("fused", self.fused))}
        return {
            "config": {"variant": self.variant, "batch": self.batch, "size": self.size, "dtype": self.dtype,
                       "tf32": self.tf32, "input_precision": modelled_dot_precision(self.dtype, self.tf32),
                       "launch_overhead_us": self.launch_overhead_us,
                       "l2_tbps": self.l2_tbps},
            "gpus": [asdict(g) for g in GPUS],
            "assumptions": list(self.assumptions),
            "totals": totals,
            "blocks": [b.to_dict() for b in self.blocks],
            "roofline": [dict(r.to_dict(), bytes_model="high" if r.network == "fused-high" else "minimal")
                         for r in self.rooflines],
            "launches": {"eager": [l.to_dict() for l in self.eager], "fused": [l.to_dict() for l in self.fused]},
        }


def _totals(launches: list[Launch]) -> dict:
    return {
        "launches": len(launches),
        "flops": sum(l.flops for l in launches),
        "exec_flops": sum(l.exec_flops for l in launches),
        "padded_flops": sum(l.padded_flops for l in launches),
        "hbm_bytes": sum(l.hbm_bytes for l in launches),
        "hbm_bytes_high": sum(l.hbm_bytes_high for l in launches),
        "halo_bytes": sum(l.halo_bytes for l in launches),
        "l2_bytes": sum(l.l2_bytes for l in launches),
        "cache_reread_bytes": sum(l.cache_reread_bytes for l in launches),
    }


ASSUMPTIONS = [
    "Inference: model.eval(), under torch.no_grad() / inference_mode, model and input converted "
    "to the dtype (no autocast), NCHW. The fused blocks then use their cached folded weights: 4 "
    "launches per block (branch 1, pool projection, two reduce -> kxk). (With autograd enabled, FusedInception re-folds BN every forward, adding "
    "small launches not counted here; autocast would add weight casts to both networks.)",
    "Fused stem (torchvision variant): each stem conv unit runs its cuDNN conv (the eager launch), then "
    "one Triton epilogue (kernels/bn_relu_pool.py) that reads the conv's output once with the BN's "
    "4 x C parameters and writes relu(BN(x)), max-pooled 3x3/2 (ceil_mode) after conv1 and conv3: 3 "
    "launches for eager's 8 BN, ReLU and max-pool launches. Its pool taps' re-reads hit L1/L2 "
    "(cache_reread_bytes), as the eager max-pool's do. The paper variant's stem (LRN, no BN), the "
    "inter-stage pools and the head are eager in both networks.",
    "Peaks are NVIDIA datasheet figures, dense (no sparsity): H100 SXM and H200 SXM 989.4 TFLOP/s "
    "bf16/fp16, 494.7 TF32, 66.9 fp32 (non-tensor); HBM 3.35 TB/s (H100, HBM3) and 4.8 TB/s "
    "(H200, HBM3e); 50 MB L2 and 132 SMs (H100 figures; the H200 is the same GH100 chip with "
    "faster, larger memory). Real kernels reach a fraction "
    "of both: the estimate is a ceiling on throughput, not a prediction.",
    "Per launch: time = max(FLOPs / peak, HBM bytes / bandwidth); network time = sum over launches "
    "(no overlap between launches), plus a fixed per-launch overhead (an assumption; 0 gives the "
    "pure roofline).",
    "FLOPs = 2 x MAC of convs and the linear layer; elementwise, BN, pool, LRN and cat launches "
    "count 0 FLOPs and are charged bytes only. Fused launches are charged their padded FLOPs "
    "(halo recompute over each tile's pixel run rounded up to BLOCK_HALO, the last tile's BLOCK_M "
    "rounding and channel padding to the dot blocks); eager "
    "convs their useful FLOPs (cuDNN's own waste is unknown here, which favours eager).",
    "Minimal HBM bytes: every launch reads its inputs and weights once and writes its outputs "
    "once; between launches every tensor goes through HBM. At batch 256 bf16 the 14x14 and 7x7 "
    "block inputs are 21-53 MB and many branch intermediates a few MB, against 50 MB of L2, so "
    "some eager round trips may be served from L2: the eager byte counts are an upper bound there.",
    "Fused: the 9 max-pool taps and the per-channel-block input re-reads hit L1/L2; tile halos are "
    "counted once in hbm_bytes and their extra loads separately (halo_bytes); the per-program "
    "scratch of the reduce -> kxk kernel is L2 traffic (l2_bytes; footprint scratch_bytes, "
    "programs and column splits as kernels/reduce_conv.py's grid on 132 SMs). 'fused (high)' charges as HBM the halo re-reads, one "
    "scratch write-back and, when the block input exceeds half the L2 and the pointwise grid sweeps "
    "all pixels for one column tile first (commit d2e917c's grid), its input re-read per column tile.",
    "Eager launches follow PyTorch eager on CUDA in eval, NCHW: conv unit = cuDNN conv + BN + "
    "in-place ReLU (torchvision) or cuDNN conv + bias add_ + in-place ReLU (paper: ATen adds the "
    "conv bias in a separate kernel); LRN = the 8 kernels of F.local_response_norm; cat = 1 "
    "launch per block; dropout and flatten launch nothing; aux heads do not run in eval; linear = "
    "1 cuBLASLt GEMM with bias epilogue. cuDNN layout transposes and workspace traffic are not "
    "modelled.",
    "fp32: convs and the fused kernels run at the TF32 peak when tf32 is on (PyTorch's default "
    "torch.backends.cudnn.allow_tf32 = True, which the fused kernels follow: input_precision "
    "'tf32', 'mma' configs), else at the fp32 non-tensor peak (IEEE dots, 'fma' reduce -> kxk "
    "config); the linear layer runs at the fp32 non-tensor peak (default matmul "
    "precision 'highest').",
    "Not in the roofline unless an L2 bandwidth is given (there is no datasheet figure): the "
    "scratch L2 traffic (l2_bytes); never in it: the other L1/L2 re-reads (cache_reread_bytes: "
    "halo, per-channel-block input and per-tile weight reloads) and the CPU-side launch cost of "
    "Python eager.",
]


def build_plan(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16", *,
               tf32: bool = True, launch_overhead_us: float = DEFAULT_LAUNCH_OVERHEAD_US,
               l2_tbps: float | None = None, bias_add_separate: bool = True) -> Plan:
    """Eager and fused launches, per-block summaries and the H100/H200 rooflines.

    ``l2_tbps``: charge the fused kernels' scratch L2 traffic at this assumed bandwidth (default:
    not charged). ``bias_add_separate``: see ``eager_launches``.
    """
    eager = eager_launches(variant, batch, size, dtype, bias_add_separate=bias_add_separate)
    rooflines = []
    fused_by_gpu = {}
    for gpu in GPUS:
        fused = fused_by_gpu.setdefault((gpu.sms, gpu.l2_mb), fused_launches(
            variant, batch, size, dtype, sms=gpu.sms, l2_capacity=gpu.l2_mb * 1e6,
            bias_add_separate=bias_add_separate, tf32=tf32))
        kw = dict(tf32=tf32, launch_overhead_us=launch_overhead_us, l2_tbps=l2_tbps)
        rooflines.append(roofline(eager, gpu, dtype, batch, **kw))
        rooflines.append(roofline(fused, gpu, dtype, batch, **kw))
        high = roofline(fused, gpu, dtype, batch, high=True, **kw)
        rooflines.append(Roofline(**{**asdict(high), "network": "fused-high"}))
    fused = fused_by_gpu[(GPUS[0].sms, GPUS[0].l2_mb)]  # H100 and H200 are the same chip
    blocks = block_summaries(eager, fused, variant, batch, size, dtype)
    return Plan(variant, batch, size, dtype, tf32, launch_overhead_us, l2_tbps, eager, fused, blocks, rooflines,
                list(ASSUMPTIONS))
