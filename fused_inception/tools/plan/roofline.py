"""The datasheet roofline of a network's launches on one GPU.

Roofline: per launch, time = max(FLOPs / peak, bytes / HBM bandwidth) with datasheet peaks, summed
over launches, optionally plus a fixed per-launch overhead (an assumption, default 3 us). This is
a ceiling on throughput, not a prediction: real kernels reach a fraction of both peaks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fused_inception.tools.plan.gpus import GPU
from fused_inception.tools.plan.launches import Launch

DEFAULT_LAUNCH_OVERHEAD_US = 3.0  # assumption: fixed cost per launch (ramp-up, tail, gap)


@dataclass(frozen=True)
class Roofline:
    """Roofline estimate of one network on one GPU (times in seconds)."""

    gpu: str
    network: str
    launches: int
    flops: int  # the FLOPs the estimate charges (padded for fused launches)
    hbm_bytes: int
    compute_s: float  # sum of FLOPs / peak
    memory_s: float  # sum of bytes / bandwidth
    roofline_s: float  # sum over launches of max(compute, memory)
    overhead_s: float  # launches x per-launch overhead
    total_s: float  # roofline_s + overhead_s
    batch: int

    @property
    def img_per_s(self) -> float:
        return self.batch / self.total_s

    @property
    def img_per_s_no_overhead(self) -> float:
        return self.batch / self.roofline_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["img_per_s"] = self.img_per_s
        d["img_per_s_no_overhead"] = self.img_per_s_no_overhead
        return d


def launch_time(launch: Launch, gpu: GPU, dtype: str, tf32: bool = True, *, high: bool = False,
                l2_tbps: float | None = None) -> float:
    """max(padded FLOPs / peak, HBM bytes / bandwidth) of one launch, in seconds.

    ``l2_tbps``: also charge the scratch traffic (``l2_bytes``) at this L2 bandwidth (TB/s), an
    assumption: there is no datasheet figure.
    """
    nbytes = launch.hbm_bytes_high if high else launch.hbm_bytes
    t_mem = nbytes / (gpu.hbm_tbps * 1e12)
    t_flop = launch.padded_flops / gpu.peak_flops(dtype, launch.math, tf32) if launch.padded_flops else 0.0
    t_l2 = launch.l2_bytes / (l2_tbps * 1e12) if l2_tbps else 0.0
    return max(t_mem, t_flop, t_l2)


def roofline(launches: list[Launch], gpu: GPU, dtype: str, batch: int, *, tf32: bool = True,
             launch_overhead_us: float = DEFAULT_LAUNCH_OVERHEAD_US, high: bool = False,
             l2_tbps: float | None = None) -> Roofline:
    """Sum the per-launch roofline times of ``launches`` (one network) on ``gpu``.

    ``high``: charge ``hbm_bytes_high`` instead of the minimal ``hbm_bytes``; ``l2_tbps``: also
    charge the scratch L2 traffic at this assumed bandwidth (see ``launch_time``).
    """
    compute = sum(l.padded_flops / gpu.peak_flops(dtype, l.math, tf32) for l in launches if l.padded_flops)
    nbytes = sum(l.hbm_bytes_high if high else l.hbm_bytes for l in launches)
    memory = nbytes / (gpu.hbm_tbps * 1e12)
    bound = sum(launch_time(l, gpu, dtype, tf32, high=high, l2_tbps=l2_tbps) for l in launches)
    overhead = len(launches) * launch_overhead_us * 1e-6
    network = launches[0].network if launches else ""
    return Roofline(gpu.name, network, len(launches), sum(l.padded_flops for l in launches), nbytes,
                    compute, memory, bound, overhead, bound + overhead, batch)
