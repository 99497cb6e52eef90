"""The latency-aware cost model of ``plan`` (every number it gives is *modelled*, not measured).

The datasheet roofline of ``fused_inception.tools.plan`` charges FLOPs and HBM bytes at peak, so it
cannot see a kernel that spends its time waiting on memory round trips. This module charges each
launch the LARGEST of five times:

* ``mma``: the MMA work of the busiest SM at an achievable tensor-core rate: the dense datasheet
  peak times ``wgmma_efficiency`` for dots of >= 64 rows (sm_90 issues wgmma only for those),
  ``mma_sync_efficiency`` for smaller dots (mma.sync on Hopper), ``fma_efficiency`` of the fp32
  non-tensor peak for fp32 IEEE dots;
* ``hbm``: the launch's minimal HBM bytes / (datasheet bandwidth x ``hbm_efficiency``);
* ``l2`` (L1/L2 traffic): the global loads and scratch stores of the kernel's loops that go to
  L2, / the L2 bandwidth ``l2_tbps``, plus the loads that hit L1 (a program re-reading lines it
  has just loaded: the pool taps' shifted windows, a tile re-read per channel block), / the L1
  bandwidth (``l1_bytes_per_clk`` per SM). Async copies (cp.async .cg, TMA) bypass L1;
* ``issue``: the busiest SM's warp instructions at ``issue_ipc`` instructions per clock on each of
  its four schedulers, for loops whose compiled instruction count is known (``Loop.instructions``,
  counted by compile-check in the SASS loop body; 0 = unknown, not charged). A loop that builds
  its operand in registers (the pool taps' loads, masks and maxes) is bound here, not by bytes;
* ``latency``: the exposed-latency chain. A loop of ``trips`` steps whose loads are ``depth``
  deep in flight (software pipelining: depth = num_stages - 1; unpipelined: 1) exposes
  ``round_trip x (1 + (trips - 1) / depth)`` per instance, times the serial round trips of one
  step (nine for a pool tap loop the compiler does not unroll). The busiest SM runs its programs
  in waves of ``resident``; a program's chain is its work units' chains one after another.

Grid fill is charged in ``mma`` and ``latency`` through the busiest SM: a grid of P programs on S
SMs puts n = ceil(P/S) programs on some SM, each running ceil(units/P) work units; its MMA work is
n x ceil(units/P) units' worth, its latency ceil(n / resident) waves of one program's chain (a
chain does not get shorter when its SM is half empty).

Fused kernels are described by a small declarative ``Schedule`` (schedules.py builds them:
loops, trip counts, tile bytes, pipeline depth, programs and residency). Eager launches (cuDNN,
cuBLAS, ATen elementwise) have no schedule: a conv or GEMM runs at ``cudnn_efficiency`` of the
dense peak, everything is also bounded by its HBM bytes. Nor do the fused stem's epilogue launches
(``fused.FusedTracer.stem_epilogue``): streaming kernels charged as the eager BN, ReLU and max-pool
launches they replace are, by their HBM bytes: the channels_last launches, whose tiles do not
bind at their compiled residency (5 programs per SM) even with every tap a round trip of its own,
as their SASS nearly has it (the taps' loads interleaved with the maxes). NCHW (2 programs per
SM) they would: conv1's latency chain is about 1.5x its HBM time on an H200, so the model
undercounts that layout's epilogues, which still stay under the eager launches they replace
(tests/tools/test_plan.py checks both). Their loop's instructions are not counted (no issue
bound, as for any uncounted loop).

A network is a timeline: the host issues one launch every ``host_us`` (it runs ahead of the GPU,
so this only shows where GPU launches are shorter), the GPU runs each launch ``gap_us`` plus its
modelled time after the previous one. ``LatencyFigures`` states every constant and where it
comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fused_inception.tools.plan.gpus import GPU, H100_PCIE, H100_SXM, H200_SXM
from fused_inception.tools.plan.launches import Launch

_MMA_KINDS = ("wgmma", "mma_sync", "fma")
SCHEDULERS_PER_SM = 4  # warp schedulers per SM, sm_80 and sm_90


@dataclass(frozen=True)
class LatencyFigures:
    """The constants of the latency model for one GPU (all assumptions; see benchmarks/NOTES.md).

    * ``clock_ghz``: SM boost clock of the datasheet, to turn cycles into seconds.
    * ``l1_bytes_per_clk``: L1 load bandwidth per SM, 128 bytes per clock (NVIDIA's tuning guides
      for Ampere and Hopper; 33 TB/s over 132 SMs at 1.98 GHz).
    * ``l2_tbps``: L2 bandwidth. Chips and Cheese's microbenchmarks of an H100 PCIe (114 SMs)
      measured about 5.5 TB/s of L2 read bandwidth; NVIDIA publishes no figure. Other GH100 parts
      are scaled by their SM count (132 SMs: 6.4 TB/s).
    * ``l2_hit_cycles``: load-to-use latency of an L2 hit, about 260-300 cycles on Hopper in the
      published microbenchmarks (Luo et al., "Benchmarking and Dissecting the Nvidia Hopper GPU
      Architecture", 2024; Chips and Cheese); 270 here.
    * ``step_overhead_cycles``: the rest of one unpipelined K step after the load returns: store
      to shared memory, barrier, fragment loads and the MMA's own latency (about 150 cycles).
    * ``wgmma_efficiency`` / ``mma_sync_efficiency``: achievable fraction of the dense tensor-core
      peak: 0.75 for wgmma (large cuBLAS/CUTLASS GEMMs on H100 SXM reach about 700-750 of 989
      TFLOP/s), 0.5 for mma.sync, which Luo et al. measured at about two thirds of wgmma's rate.
    * ``fma_efficiency``: fp32 IEEE dots on CUDA cores, fraction of the fp32 peak.
    * ``cudnn_efficiency``: eager convs and GEMMs, fraction of the dense peak (cuDNN's implicit
      GEMM on mid-size convs; an assumption, not fitted).
    * ``hbm_efficiency``: achievable fraction of the datasheet HBM bandwidth (streaming kernels).
    * ``issue_ipc``: warp instructions each of an SM's four schedulers issues per clock in a
      loop whose instructions are counted: 1 is Hopper's and Ampere's peak (the prior); dependent
      instructions, memory stalls and barriers lower it.
    * ``gap_us``: GPU-side cost per launch (launch latency, ramp-up, tail), the roofline's default.
    * ``host_us``: host-side cost of issuing one launch (Python, dispatcher, driver): the prior
      before calibration; ``kernelbench.fit_host_us`` fits it to a published measurement.
    """

    gpu: GPU
    clock_ghz: float
    l2_tbps: float
    l1_bytes_per_clk: float = 128.0
    l2_hit_cycles: float = 270.0
    step_overhead_cycles: float = 150.0
    wgmma_efficiency: float = 0.75
    mma_sync_efficiency: float = 0.5
    fma_efficiency: float = 0.7
    cudnn_efficiency: float = 0.6
    hbm_efficiency: float = 0.9
    issue_ipc: float = 1.0
    gap_us: float = 3.0
    host_us: float = 5.0

    @property
    def l1_bytes_per_s(self) -> float:
        return self.l1_bytes_per_clk * self.gpu.sms * self.clock_ghz * 1e9

    @property
    def issue_per_s(self) -> float:
        """Warp instructions the whole GPU issues per second (four schedulers per SM)."""
        return SCHEDULERS_PER_SM * self.issue_ipc * self.gpu.sms * self.clock_ghz * 1e9

    @property
    def round_trip_s(self) -> float:
        """One exposed memory round trip of a K step, in seconds."""
        return (self.l2_hit_cycles + self.step_overhead_cycles) / (self.clock_ghz * 1e9)

    def mma_rate(self, kind: str, dtype: str, tf32: bool) -> float:
        """Achievable FLOP/s of the whole GPU for dots of ``kind`` ("wgmma", "mma_sync", "fma")."""
        if kind not in _MMA_KINDS:
            raise ValueError(f"unknown MMA kind {kind!r}; expected one of {_MMA_KINDS}")
        if kind == "fma":
            return self.gpu.fp32_tflops * 1e12 * self.fma_efficiency
        eff = self.wgmma_efficiency if kind == "wgmma" else self.mma_sync_efficiency
        return self.gpu.peak_flops(dtype, "conv", tf32) * eff


def _l2_scaled(sms: int) -> float:
    return 5.5 * sms / 114


FIGURES = {
    H100_SXM.name: LatencyFigures(H100_SXM, clock_ghz=1.98, l2_tbps=_l2_scaled(H100_SXM.sms)),
    H200_SXM.name: LatencyFigures(H200_SXM, clock_ghz=1.98, l2_tbps=_l2_scaled(H200_SXM.sms)),
    H100_PCIE.name: LatencyFigures(H100_PCIE, clock_ghz=1.755, l2_tbps=_l2_scaled(H100_PCIE.sms)),
}


def figures_for(gpu: GPU) -> LatencyFigures:
    """The default figures of a GPU of ``plan`` (H100 SXM, H200 SXM, H100 PCIe)."""
    if gpu.name not in FIGURES:
        raise ValueError(f"no latency figures for {gpu.name!r}; expected one of {sorted(FIGURES)}")
    return FIGURES[gpu.name]


# --------------------------------------------------------------------------------------------
# Schedules of the fused kernels


@dataclass(frozen=True)
class Loop:
    """One loop of a work unit: ``instances`` runs per unit of ``trips`` steps each.

    Per step: ``flops`` of dots run as ``mma`` ("wgmma": >= 64-row dots on sm_90; "mma_sync";
    "fma": fp32 IEEE dots on CUDA cores),
    ``load_bytes`` of global loads served by L2, ``l1_bytes`` of loads expected to hit L1,
    ``serial`` dependent round trips when not pipelined.
    ``depth``: loads in flight (num_stages - 1 when the compiler pipelines the loop, else 1).
    ``store_bytes``: global stores per instance (scratch rows written after the loop).
    ``instructions``: SASS instructions one warp issues per step, counted in the compiled loop
    body (0: not known, no issue bound).
    """

    name: str
    instances: int
    trips: int
    depth: int
    mma: str
    flops: int
    load_bytes: int
    l1_bytes: int = 0
    serial: int = 1
    store_bytes: int = 0
    instructions: int = 0

    def __post_init__(self) -> None:
        if self.mma not in _MMA_KINDS:
            raise ValueError(f"unknown MMA kind {self.mma!r}; expected one of {_MMA_KINDS}")
        for name in ("instances", "trips", "depth", "serial"):
            if getattr(self, name) < 1:
                raise ValueError(f"Loop.{name} must be >= 1, got {getattr(self, name)}")

    def round_trips(self) -> float:
        """Exposed round trips of the loop per work unit (see the module docstring)."""
        return self.instances * self.serial * (1 + (self.trips - 1) / self.depth)

    def total_flops(self) -> int:
        return self.instances * self.trips * self.flops

    def total_bytes(self) -> int:
        """Bytes to and from L2 per work unit: loads missing L1, and the stores."""
        return self.instances * (self.trips * self.load_bytes + self.store_bytes)

    def total_l1_bytes(self) -> int:
        return self.instances * self.trips * self.l1_bytes

    def total_instructions(self) -> int:
        """Warp instructions of one warp per work unit."""
        return self.instances * self.trips * self.instructions


@dataclass(frozen=True)
class Work:
    """``count`` work units (tiles, or tile x channel-block pairs) that run ``loops`` in order."""

    name: str
    count: int
    loops: tuple[Loop, ...]


@dataclass(frozen=True)
class Schedule:
    """How one fused launch runs: its work units, grid and residency.

    ``programs``: grid size (persistent grids: fewer programs than units, each walks
    ceil(units / programs) of them); ``resident``: programs one SM holds at a time;
    ``warps``: warps per program; ``hbm_bytes``: the launch's minimal HBM traffic.
    """

    label: str  # "today" or "pipelined"
    launch: str
    works: tuple[Work, ...]
    programs: int
    resident: int
    warps: int
    hbm_bytes: int
    detail: str = ""

    @property
    def units(self) -> int:
        return sum(w.count for w in self.works)

    def busiest_sm(self, sms: int) -> tuple[float, int, int]:
        """(share of all work units the busiest SM runs, waves of resident programs it runs, work
        units per program)."""
        per_program = -(-self.units // self.programs)
        programs_on_sm = -(-self.programs // sms)
        waves = -(-programs_on_sm // self.resident)
        return min(1.0, programs_on_sm * per_program / self.units), waves, per_program


@dataclass(frozen=True)
class LaunchTime:
    """Modelled time of one launch (seconds): the five bounds and their maximum."""

    launch: str
    mma: float
    hbm: float
    l2: float
    latency: float
    detail: str = ""
    issue: float = 0.0
    total: float = field(init=False)
    bound: str = field(init=False)

    def __post_init__(self) -> None:
        bounds = {"mma": self.mma, "hbm": self.hbm, "l2": self.l2, "issue": self.issue, "latency": self.latency}
        bound = max(bounds, key=bounds.get)
        object.__setattr__(self, "total", bounds[bound])
        object.__setattr__(self, "bound", bound)


def schedule_time(s: Schedule, fig: LatencyFigures, dtype: str, tf32: bool = True) -> LaunchTime:
    """The modelled time of a fused launch from its schedule (see the module docstring)."""
    share, waves, per_program = s.busiest_sm(fig.gpu.sms)
    flops: dict[str, int] = {}
    trips = 0.0
    l2_bytes = l1_bytes = instructions = 0
    for work in s.works:
        for loop in work.loops:
            flops[loop.mma] = flops.get(loop.mma, 0) + work.count * loop.total_flops()
            trips += work.count * loop.round_trips()
            l2_bytes += work.count * loop.total_bytes()
            l1_bytes += work.count * loop.total_l1_bytes()
            instructions += work.count * loop.total_instructions() * s.warps
    # the busiest SM's MMA work at one SM's share of the GPU's rate
    mma = sum(share * f * fig.gpu.sms / fig.mma_rate(kind, dtype, tf32) for kind, f in flops.items())
    hbm = s.hbm_bytes / (fig.gpu.hbm_tbps * 1e12 * fig.hbm_efficiency)
    l2 = l2_bytes / (fig.l2_tbps * 1e12) + l1_bytes / fig.l1_bytes_per_s
    # the busiest SM's warp instructions at one SM's share of the GPU's issue rate
    issue = share * instructions * fig.gpu.sms / fig.issue_per_s
    # one program's chain: its units, each the average unit's chain
    latency = waves * per_program * trips / s.units * fig.round_trip_s
    return LaunchTime(s.launch, mma, hbm, l2, latency, s.detail, issue)


def eager_time(launch: Launch, fig: LatencyFigures, dtype: str, tf32: bool = True) -> LaunchTime:
    """A launch without a schedule (an eager launch, or a fused stem epilogue): convs/GEMMs at
    ``cudnn_efficiency`` of the dense peak, all launches bound by their HBM bytes at
    ``hbm_efficiency``; no latency chain (no schedule is known)."""
    mma = 0.0
    if launch.flops:
        mma = launch.flops / (fig.gpu.peak_flops(dtype, launch.math, tf32) * fig.cudnn_efficiency)
    hbm = launch.hbm_bytes / (fig.gpu.hbm_tbps * 1e12 * fig.hbm_efficiency)
    return LaunchTime(launch.name, mma, hbm, 0.0, 0.0, launch.kind)


def timeline(gpu_seconds: list[float], fig: LatencyFigures, host_us: float | None = None) -> float:
    """End time (seconds) of a stream of launches: the host issues launch i at (i + 1) x host_us,
    the GPU starts it when both it is issued and the previous launch has ended, and runs it for
    gap_us plus its modelled time. ``host_us`` defaults to the figures' own."""
    host = (fig.host_us if host_us is None else host_us) * 1e-6
    end = 0.0
    for i, t in enumerate(gpu_seconds):
        end = max(end, (i + 1) * host) + fig.gap_us * 1e-6 + t
    return end


__all__ = [
    "FIGURES",
    "SCHEDULERS_PER_SM",
    "LatencyFigures",
    "LaunchTime",
    "Loop",
    "Schedule",
    "Work",
    "eager_time",
    "figures_for",
    "schedule_time",
    "timeline",
]
