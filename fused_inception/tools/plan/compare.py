"""Eager vs today's fused kernels vs the pipelined redesign, per Inception block and whole network,
under the latency model (``latency``; every time here is modelled).

A block's time is the sum over its launches of the GPU-side gap plus the launch's modelled time
(at batch 256 the host runs ahead of the GPU, so host issue cost does not show inside a block);
the network's time is the ``timeline`` of all its launches, host issue included. Both fused
networks keep the eager inter-stage pools and head. Their stems: "today" (commit d2e917c) the
eager one; "pipelined" (the code now) the fused stem of ``fused.FusedTracer`` (torchvision: each
conv unit's conv, then one epilogue launch for its BN, ReLU and max-pool), whose epilogues are
charged by ``eager_time``, like the eager memory-bound launches they replace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fused_inception.spec import BLOCK_NAMES
from fused_inception.tools.plan.eager import eager_launches
from fused_inception.tools.plan.fused import fused_stem_launches
from fused_inception.tools.plan.gpus import GPU
from fused_inception.tools.plan.shapes import block_shapes
from fused_inception.tools.plan.latency import LatencyFigures, LaunchTime, eager_time, figures_for, schedule_time, timeline
from fused_inception.tools.plan.schedules import LABELS, block_schedules

BLOCK_TARGET = 0.5  # issue 12: every block's fused time <= 0.5x its modelled eager time (H200, batch 256, bf16)
NETWORK_TARGET = 0.6  # ... and the whole network <= 0.6x


@dataclass(frozen=True)
class BlockTimes:
    """Modelled seconds of one Inception block: eager, today's fused kernels, pipelined."""

    block: str
    eager: float
    today: float
    pipelined: float
    today_bound: str  # bound of today's slowest launch
    pipelined_bound: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Comparison:
    """The latency model of one setting on one GPU."""

    gpu: str
    variant: str
    batch: int
    dtype: str
    tf32: bool
    figures: LatencyFigures
    blocks: list[BlockTimes]
    network: dict[str, float]  # "eager", "today", "pipelined" -> timeline seconds
    launches: dict[str, list[LaunchTime]]  # per network, in launch order

    def to_dict(self) -> dict:
        fig = asdict(self.figures)
        fig["gpu"] = self.figures.gpu.name
        return {
            "gpu": self.gpu, "variant": self.variant, "batch": self.batch, "dtype": self.dtype, "tf32": self.tf32,
            "figures": fig, "blocks": [b.to_dict() for b in self.blocks], "network_s": dict(self.network),
            "launches": {net: [asdict(t) for t in ts] for net, ts in self.launches.items()},
        }


def _block_cost(times: list[LaunchTime], fig: LatencyFigures) -> float:
    return sum(t.total + fig.gap_us * 1e-6 for t in times)


def compare(gpu: GPU, variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16",
            tf32: bool = True, figures: LatencyFigures | None = None,
            pointwise_cfg: object | None = None, pointwise_compiled: dict | None = None,
            reduce_conv_cfg: object | None = None, fused_stem: bool = True) -> Comparison:
    """Model the eager network and both fused networks on ``gpu`` (default figures of that GPU;
    ``pointwise_cfg``, ``pointwise_compiled``, ``reduce_conv_cfg``: the pipelined blocks' pointwise
    config and compiled figures and their reduce -> k x k config, default the configs picked now
    and the code now; ``fused_stem``: the pipelined network runs the fused stem, as the code now
    does; False: the eager stem, as the code of an earlier measurement did)."""
    fig = figures or figures_for(gpu)
    eager = eager_launches(variant, batch, size, dtype)
    eager_times = [eager_time(l, fig, dtype, tf32) for l in eager]
    shapes = block_shapes(variant, size)
    fused_blocks = {label: {name: [schedule_time(s, fig, dtype, tf32)
                                   for s in block_schedules(label, name, spec, batch, h, w, dtype, gpu.sms, tf32,
                                                            pointwise_cfg, pointwise_compiled, reduce_conv_cfg)]
                            for name, (spec, h, w) in shapes.items()}
                    for label in LABELS}
    # each group's fused launches replace its eager ones: a block's (3 today, 4 pipelined), the stem's
    swapped = {label: dict(fused_blocks[label]) for label in LABELS}
    if fused_stem:
        swapped["pipelined"]["stem"] = [eager_time(l, fig, dtype, tf32)
                                        for l in fused_stem_launches(variant, batch, size, dtype)]
    launches = {"eager": eager_times}
    for label in LABELS:
        seq: list[LaunchTime] = []
        done: set[str] = set()
        for l, t in zip(eager, eager_times):
            if l.block not in swapped[label]:
                seq.append(t)
            elif l.block not in done:
                seq += swapped[label][l.block]
                done.add(l.block)
        launches[label] = seq
    rows = []
    for name in BLOCK_NAMES:
        e = [t for l, t in zip(eager, eager_times) if l.block == name]
        today, new = fused_blocks["today"][name], fused_blocks["pipelined"][name]
        rows.append(BlockTimes(name, _block_cost(e, fig), _block_cost(today, fig), _block_cost(new, fig),
                               max(today, key=lambda t: t.total).bound, max(new, key=lambda t: t.total).bound))
    network = {net: timeline([t.total for t in ts], fig) for net, ts in launches.items()}
    return Comparison(gpu.name, variant, batch, dtype, tf32, fig, rows, network, launches)


__all__ = ["BLOCK_TARGET", "NETWORK_TARGET", "BlockTimes", "Comparison", "compare"]
