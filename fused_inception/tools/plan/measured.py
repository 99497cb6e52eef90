"""Calibration of the latency model (``latency``) against this project's own GPU measurement.

The first GPU run of the project (``benchmarks/gpu_check.sh`` on an H200 at commit ac3b22c,
``benchmarks/results/nvidia-h200-20261130-2337.json``: torch 2.11, triton 3.6, cuDNN 9.19) timed
the nine torchvision Inception blocks alone and the whole network, inference, bf16, batch 256,
channels_last, cuDNN autotuned, inputs rotated through 192 MB, CUDA-event medians: eager
channels_last (``eager-cl``: the model's eager cuDNN) and the fused blocks (``fused-cl``: the
untuned Triton kernels, the model's "pipelined" schedule with the same configs).

What is fitted:

* eager: ``cudnn_efficiency`` (the fraction of the dense peak eager convs reach; prior 0.6), so
  that the model's **sum over the nine blocks** equals the measured sum;
* fused: ``issue_ipc`` (warp instructions per scheduler and clock in loops whose SASS
  instructions are counted; prior 1, the peak), so that the model's pointwise launches grow from
  the config ``np64`` to ``np32`` as the same run's tuner measured (``POINTWISE_MS``: summed
  over 3b, 4d and 5b; differences, which cancel do_bench's per-call host time); then
  ``l2_tbps`` (prior 6.4 TB/s from a microbenchmark of another part) so that the fused blocks'
  sum equals the measured sum; the two fits repeat until neither moves.

The fused side is modelled with the configs and code that ran: the pointwise default of ac3b22c
is the candidate ``np64`` now (``MEASURED_POINTWISE``), and its compiled loops are
``schedules.COMPILED_POINTWISE_AC3B22C`` (pool taps masked to -inf: 478 instructions per step
against 215 now); its reduce -> k x k default is the candidate ``mma-64`` now
(``MEASURED_REDUCE_CONV``: 64 x 64 tiles in every launch, no aligned tiles). The fitted figures
applied to the configs and code now give the calibrated prediction of the current kernels
(``fused_now``): modelled, not measured.

What is held out: the per-block residuals after the fit, the tuner's other pointwise rows
(``n32``, ``s4``, ``n32s4``, and how the np32 - np64 growth splits over the blocks), a second
measurement of the same kernels per block (the second run's tactic rows, ``TACTIC_TRITON_MS``), and
the whole network (stem, pools and head included), which no fit saw; ``anchored_network_ms``
replaces the model's stem, pools and head by what the measured network spent outside its blocks.
That network ran the eager stem; the code now fuses the torchvision stem (``fused.FusedTracer``),
so ``anchored_fused_stem_network_ms`` takes off what the fitted model says the fusion saves
(``stem_saving_ms``): a modelled correction to a measured rest.
Each fitted constant absorbs everything its side mis-models (launch gaps, cuDNN's algorithm
choices, pool taps, tails), so it is a calibration factor, not a
measurement of that quantity. One run on one GPU at one batch: it says how far off the priors
are, not that the fitted values hold at other batches or on other GPUs. ``plan``'s tables keep
the priors; this section is printed beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fused_inception.kernels.configs import config_by_name
from fused_inception.spec import BLOCK_NAMES
from fused_inception.tools.plan.compare import NETWORK_TARGET, compare
from fused_inception.tools.plan.eager import eager_launches
from fused_inception.tools.plan.fused import stem_fusion
from fused_inception.tools.plan.gpus import H200_SXM
from fused_inception.tools.plan.latency import LatencyFigures, eager_time, figures_for, schedule_time
from fused_inception.tools.plan.launches import Launch
from fused_inception.tools.plan.schedules import COMPILED_POINTWISE_AC3B22C, block_schedules, pointwise_pipelined
from fused_inception.tools.plan.shapes import block_shapes

SOURCE = "benchmarks/results/nvidia-h200-20261130-2337.json (gpu_check.sh, commit ac3b22c)"
VARIANT, BATCH, SIZE, DTYPE = "torchvision", 256, 224, "bfloat16"
# the configs the measurement ran (ac3b22c's defaults, by their names now)
MEASURED_POINTWISE = "np64"
MEASURED_REDUCE_CONV = "mma-64"
TUNED_SOURCE = "benchmarks/results/nvidia-h200-20261130-2337-tuned.json (tune, commit ac3b22c)"
# measured median ms of a block's two pointwise launches per config (names as now: the file's
# "default" is np64), do_bench with an idle GPU at every call (host time included); the tuner's
# rows, bf16, batch 256, channels_last (tests/tools/test_plan.py checks them against the file)
POINTWISE_MS: dict[str, dict[str, float]] = {
    "np64": {"3b": 0.350, "4d": 0.195, "5b": 0.159}, "np32": {"3b": 0.611, "4d": 0.296, "5b": 0.246},
    "n32": {"3b": 0.627, "4d": 0.305, "5b": 0.254}, "s4": {"3b": 0.659, "4d": 0.317, "5b": 0.256},
    "n32s4": {"3b": 0.675, "4d": 0.326, "5b": 0.267}}
# the rows the issue rate is fitted to (their difference); the others are held out
FITTED_POINTWISE = ("np64", "np32")

# measured median ms (the source's "infer" cases, bf16, batch 256): eager channels_last and fused
# channels_last, per block and for the network (tests/tools/test_plan.py checks them against it)
EAGER_CL_MS: dict[str, float] = {"3a": 1.079, "3b": 1.559, "4a": 0.648, "4b": 0.680, "4c": 0.675,
                                 "4d": 0.729, "4e": 0.837, "5a": 0.498, "5b": 0.461, "net": 12.457}
FUSED_CL_MS: dict[str, float] = {"3a": 0.649, "3b": 0.999, "4a": 0.404, "4b": 0.461, "4c": 0.623,
                                 "4d": 0.525, "4e": 0.625, "5a": 0.456, "5b": 0.416, "net": 10.269}
# the same run's torch.compile (mode default) of the whole network, median ms; NCHW input (bench's
# "compile" method; inductor picks its own conv layouts)
COMPILE_NET_MS = 7.643

# a second measurement of the same kernels (kernels/ unchanged between ac3b22c and 75fa376): the
# tuner's tactic rows of the second H200 run (gpu_tactics.sh), the Triton tactic per block, bf16,
# batch 256, channels_last; back-to-back calls on one input (rules.stream_timer), so a block whose
# input fits the 50 MB L2 (5a, 5b: 21 MB) runs warm, unlike the rotated inputs above. Held out of
# every fit (tests/tools/test_plan.py checks them against the file)
TACTIC_SOURCE = ("kernels/tuned/nvidia-h200.json (gpu_tactics.sh's tactic rows, commit 75fa376; the file records "
                 "ac3b22c-dirty)")
TACTIC_TRITON_MS: dict[str, float] = {"3a": 0.644, "3b": 0.985, "4a": 0.378, "4b": 0.458, "4c": 0.443,
                                      "4d": 0.521, "4e": 0.620, "5a": 0.369, "5b": 0.358}


def blocks_ms(times: dict[str, float]) -> float:
    """The sum of the nine blocks' times in ``times`` (block name -> ms)."""
    return sum(times[b] for b in BLOCK_NAMES)


def outside_blocks_ms(times: dict[str, float]) -> float:
    """What a network time spends outside its nine blocks: ``times["net"]`` less the blocks' sum.
    For a measured network that is the stem, the inter-stage pools and the head (the launches the
    eager and the fused network share), plus whatever the blocks cost in the network beyond their
    times alone."""
    return times["net"] - blocks_ms(times)


def unscheduled_ms(launch: Launch, fig: LatencyFigures) -> float:
    """Modelled ms of a launch without a schedule (``eager_time``) and its gap, as ``compare``
    sums a block's launches."""
    return 1e3 * (fig.gap_us * 1e-6 + eager_time(launch, fig, DTYPE).total)


def eager_block_ms(fig: LatencyFigures) -> dict[str, float]:
    """Modelled ms of each block's eager launches (gap + time each), as ``compare`` sums them."""
    out = {name: 0.0 for name in BLOCK_NAMES}
    for launch in eager_launches(VARIANT, BATCH, SIZE, DTYPE):
        if launch.block in out:
            out[launch.block] += unscheduled_ms(launch, fig)
    return out


def stem_fusion_ms(fig: LatencyFigures) -> tuple[dict[str, float], dict[str, float]]:
    """Modelled ms (gap + time each) by launch name: the eager stem launches the fused stem drops
    (its BN, ReLU and max-pool launches), and the epilogue launches it runs instead (``stem_fusion``)."""
    replaced, epilogues = stem_fusion(VARIANT, BATCH, SIZE, DTYPE)
    return ({l.name: unscheduled_ms(l, fig) for l in replaced},
            {l.name: unscheduled_ms(l, fig) for l in epilogues})


def fused_block_ms(fig: LatencyFigures) -> dict[str, float]:
    """Modelled ms of each block's "pipelined" launches (gap + time each), with the measured
    configs and code."""
    cfg = config_by_name("pointwise_pool", MEASURED_POINTWISE)
    rc_cfg = config_by_name("reduce_conv", MEASURED_REDUCE_CONV)
    return {name: 1e3 * sum(fig.gap_us * 1e-6 + schedule_time(s, fig, DTYPE).total
                            for s in block_schedules("pipelined", name, spec, BATCH, h, w, DTYPE, fig.gpu.sms,
                                                     pointwise_cfg=cfg, pointwise_compiled=COMPILED_POINTWISE_AC3B22C,
                                                     reduce_conv_cfg=rc_cfg))
            for name, (spec, h, w) in block_shapes(VARIANT, SIZE).items()}


def pointwise_ms(config: str, fig: LatencyFigures) -> dict[str, float]:
    """Modelled ms of the two pointwise launches (gap + time each) of the blocks in POINTWISE_MS,
    with ``config`` as the measured code compiled it."""
    shapes = block_shapes(VARIANT, SIZE)
    cfg = config_by_name("pointwise_pool", config)
    out = {}
    for name in POINTWISE_MS[config]:
        spec, h, w = shapes[name]
        launches = pointwise_pipelined(name, spec, BATCH, h, w, DTYPE, cfg=cfg, compiled=COMPILED_POINTWISE_AC3B22C)
        out[name] = 1e3 * sum(fig.gap_us * 1e-6 + schedule_time(s, fig, DTYPE).total for s in launches)
    return out


def _pointwise_growth(fig: LatencyFigures) -> dict[str, float]:
    """Modelled np32 - np64 ms per block (what ``issue_ipc`` is fitted to)."""
    base, grown = (pointwise_ms(c, fig) for c in FITTED_POINTWISE)
    return {b: grown[b] - base[b] for b in base}


def _fit(field: str, lo: float, hi: float, target_ms: float, model, fig: LatencyFigures) -> float:
    """The value of ``field`` in [lo, hi] at which the sum of ``model(fig)`` over the blocks equals
    ``target_ms`` (the sum falls as the field grows: bisection on a log scale). ValueError when
    the target lies outside what the range can give."""
    def total(value: float) -> float:
        return sum(model(replace(fig, **{field: value})).values())

    if not total(hi) <= target_ms <= total(lo):
        raise ValueError(f"{field}: the measured {target_ms:.3f} ms lies outside the modelled "
                         f"{total(hi):.3f}-{total(lo):.3f} ms for {lo:g}-{hi:g}")
    for _ in range(50):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if total(mid) > target_ms else (lo, mid)
    return (lo * hi) ** 0.5


@dataclass(frozen=True)
class MeasuredCalibration:
    """The model against the H200 measurement: priors, fitted constants, per-block and network
    times in ms (modelled with the priors, modelled with the fitted constants, measured), and the
    fitted model of the fused kernels with the configs picked now (``fused_now``, modelled)."""

    prior_cudnn_efficiency: float
    fitted_cudnn_efficiency: float
    prior_l2_tbps: float
    fitted_l2_tbps: float
    prior_issue_ipc: float
    fitted_issue_ipc: float
    eager_prior: dict[str, float]
    eager_fitted: dict[str, float]
    fused_prior: dict[str, float]
    fused_fitted: dict[str, float]
    fused_now: dict[str, float]
    pointwise_fitted: dict[str, dict[str, float]]  # config -> block -> modelled ms (fitted figures)
    stem_replaced: dict[str, float]  # eager launch name -> modelled ms (fitted figures, gap included)
    stem_epilogues: dict[str, float]  # fused stem epilogue name -> modelled ms (the same)

    def anchored_network_ms(self) -> float:
        """The fused network with the configs now and the eager stem, anchored on the measurement
        (MODELLED blocks, MEASURED rest): the fitted model's nine blocks now plus what the measured
        fused network, which ran the eager stem, spent outside its blocks
        (``outside_blocks_ms(FUSED_CL_MS)``). The fitted model's own network models that rest too,
        and the measurement is held out from it: this is the estimate that does not lean on that
        part of the model."""
        return blocks_ms(self.fused_now) + outside_blocks_ms(FUSED_CL_MS)

    def stem_saving_ms(self) -> float:
        """What the fused stem saves in the fitted model: the eager launches it drops less the
        epilogues it runs (MODELLED; the convs are the same launches in both)."""
        return sum(self.stem_replaced.values()) - sum(self.stem_epilogues.values())

    def anchored_fused_stem_network_ms(self) -> float:
        """The network as the code now runs it, stem fused, anchored on the measurement:
        ``anchored_network_ms`` less ``stem_saving_ms`` (MODELLED blocks and stem saving, MEASURED
        rest)."""
        return self.anchored_network_ms() - self.stem_saving_ms()

    def rows(self) -> list[tuple[str, float, float, float, float, float, float, float]]:
        """(scope, eager measured, prior, fitted, fused measured, prior, fitted, fitted with the
        configs now) per block and net."""
        return [(name, EAGER_CL_MS[name], self.eager_prior[name], self.eager_fitted[name], FUSED_CL_MS[name],
                 self.fused_prior[name], self.fused_fitted[name], self.fused_now[name])
                for name in (*BLOCK_NAMES, "net")]

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(source=SOURCE, eager_measured=dict(EAGER_CL_MS), fused_measured=dict(FUSED_CL_MS),
                 compile_net_measured=COMPILE_NET_MS, anchored_network_ms=self.anchored_network_ms(),
                 stem_saving_ms=self.stem_saving_ms(),
                 anchored_fused_stem_network_ms=self.anchored_fused_stem_network_ms(),
                 tactic_source=TACTIC_SOURCE, tactic_triton_measured=dict(TACTIC_TRITON_MS),
                 tuned_source=TUNED_SOURCE, pointwise_measured=POINTWISE_MS)
        return d


def calibrate_measured(host_us: float) -> MeasuredCalibration:
    """Fit cudnn_efficiency to the measured eager block sum, issue_ipc and l2_tbps in turn to the
    pointwise growth and the fused block sum (H200 SXM figures, ``host_us`` for the network
    timelines), and model every block and the network with priors and fits."""
    prior = replace(figures_for(H200_SXM), host_us=host_us)
    eff = _fit("cudnn_efficiency", 0.01, 1.0, blocks_ms(EAGER_CL_MS), eager_block_ms, prior)
    growth = sum(POINTWISE_MS[FITTED_POINTWISE[1]][b] - POINTWISE_MS[FITTED_POINTWISE[0]][b]
                 for b in POINTWISE_MS[FITTED_POINTWISE[0]])
    fitted = replace(prior, cudnn_efficiency=eff)
    for _ in range(20):
        # at most 1 warp instruction per scheduler and clock: a fit above it would be unphysical
        ipc = _fit("issue_ipc", 0.05, 1.0, growth, _pointwise_growth, fitted)
        l2 = _fit("l2_tbps", 0.1, 100.0, blocks_ms(FUSED_CL_MS), fused_block_ms,
                  replace(fitted, issue_ipc=ipc))
        done = abs(ipc - fitted.issue_ipc) < 1e-6 * ipc and abs(l2 - fitted.l2_tbps) < 1e-6 * l2
        fitted = replace(fitted, issue_ipc=ipc, l2_tbps=l2)
        if done:
            break
    else:
        raise ValueError("the issue_ipc and l2_tbps fits did not settle in 20 rounds")
    ran = dict(pointwise_cfg=config_by_name("pointwise_pool", MEASURED_POINTWISE),
               pointwise_compiled=COMPILED_POINTWISE_AC3B22C,
               reduce_conv_cfg=config_by_name("reduce_conv", MEASURED_REDUCE_CONV))
    # the measured code ran the eager stem; the code now runs the fused one
    before = compare(H200_SXM, VARIANT, BATCH, SIZE, DTYPE, figures=prior, fused_stem=False, **ran)
    after = compare(H200_SXM, VARIANT, BATCH, SIZE, DTYPE, figures=fitted, fused_stem=False, **ran)
    now = compare(H200_SXM, VARIANT, BATCH, SIZE, DTYPE, figures=fitted)

    def per_block(cmp, field: str) -> dict[str, float]:
        times = {b.block: 1e3 * getattr(b, field) for b in cmp.blocks}
        times["net"] = 1e3 * cmp.network["eager" if field == "eager" else "pipelined"]
        return times

    return MeasuredCalibration(prior.cudnn_efficiency, eff, prior.l2_tbps, fitted.l2_tbps,
                               prior.issue_ipc, fitted.issue_ipc,
                               per_block(before, "eager"), per_block(after, "eager"),
                               per_block(before, "pipelined"), per_block(after, "pipelined"),
                               per_block(now, "pipelined"),
                               {c: pointwise_ms(c, fitted) for c in POINTWISE_MS},
                               *stem_fusion_ms(fitted))


def _against_measured(network_ms: float) -> str:
    """A modelled network time against eager-cl's and torch.compile's measured ones, and the target."""
    ratio = network_ms / EAGER_CL_MS["net"]
    return (f"{network_ms:.3f} ms, {ratio:.3f}x eager-cl's measured {EAGER_CL_MS['net']:.3f} ms and "
            f"{network_ms / COMPILE_NET_MS:.2f}x torch.compile's {COMPILE_NET_MS:.3f} (NCHW input); network target "
            f"<= {NETWORK_TARGET:g}x: {'met' if ratio <= NETWORK_TARGET else 'not met'}")


def _anchored_lines(cal: MeasuredCalibration) -> list[str]:
    """The network anchored on the measurement, without (``anchored_network_ms``) and with
    (``anchored_fused_stem_network_ms``) the fused stem, against eager-cl and torch.compile as
    measured and the issue-12 network target; the stem fusion launch by launch."""
    blocks_now = blocks_ms(cal.fused_now)
    replaced = ", ".join(f"{name.split()[0]} {ms:.3f}" for name, ms in cal.stem_replaced.items())
    epilogues = ", ".join(f"{name.split()[0]} {ms:.3f}" for name, ms in cal.stem_epilogues.items())
    return [
        f"  network anchored on the measurement (MODELLED blocks + MEASURED rest): outside its nine blocks the "
        f"measured fused network spent {FUSED_CL_MS['net']:.3f} - {blocks_ms(FUSED_CL_MS):.3f} = "
        f"{outside_blocks_ms(FUSED_CL_MS):.3f} ms (eager-cl {outside_blocks_ms(EAGER_CL_MS):.3f}; the fitted model of "
        f"the measured code gives {outside_blocks_ms(cal.fused_fitted):.3f} for that part, held out), the same "
        "launches in both networks: the eager stem, pools and head",
        f"  with the nine blocks as the fitted model of the configs now gives them ({blocks_now:.3f} ms, "
        f"{blocks_now / blocks_ms(EAGER_CL_MS):.2f}x eager-cl's blocks), eager stem as measured: "
        f"{_against_measured(cal.anchored_network_ms())}",
        f"  the stem fusion (MODELLED, fitted figures, ms per launch with its gap): eager {replaced} "
        f"(sum {sum(cal.stem_replaced.values()):.3f}) -> epilogues {epilogues} "
        f"(sum {sum(cal.stem_epilogues.values()):.3f}); saving {cal.stem_saving_ms():.3f} ms",
        f"  anchored with the fused stem (MODELLED blocks and stem saving + MEASURED rest): "
        f"{_against_measured(cal.anchored_fused_stem_network_ms())}",
    ]


def format_measured(cal: MeasuredCalibration) -> list[str]:
    """The calibration as text lines for ``plan``."""
    from fused_inception.tools.tables import text_table

    rows = [[name, f"{em:.3f}", f"{ep:.3f} ({ep / em:.2f})", f"{ef:.3f} ({ef / em:.2f})", f"{fm:.3f}",
             f"{fp:.3f} ({fp / fm:.2f})", f"{ff:.3f} ({ff / fm:.2f})", f"{fn:.3f} ({fn / ff:.2f})"]
            for name, em, ep, ef, fm, fp, ff, fn in cal.rows()]
    base = FITTED_POINTWISE[0]
    pw_rows = []
    for config, blocks in POINTWISE_MS.items():
        for b, measured in blocks.items():
            model = cal.pointwise_fitted[config][b]
            d_meas, d_model = measured - POINTWISE_MS[base][b], model - cal.pointwise_fitted[base][b]
            role = "base" if config == base else "fitted (sum)" if config in FITTED_POINTWISE else "held out"
            pw_rows.append([config, b, f"{measured:.3f}", f"{model:.3f}",
                            "" if config == base else f"{d_meas:+.3f}", "" if config == base else f"{d_model:+.3f}",
                            role])
    return [
        f"Calibration against this project's GPU measurement (MEASURED: {SOURCE}; H200, torchvision, bf16, "
        f"batch {BATCH}, channels_last, eager-cl and the untuned fused kernels): cudnn_efficiency fitted so that the "
        "eager blocks' modelled sum equals the measured sum, issue_ipc to the tuner's pointwise rows below, l2_tbps "
        "so that the fused blocks' sum equals the measured sum; per-block residuals and the network are held out",
        f"  eager cudnn_efficiency {cal.prior_cudnn_efficiency:g} (prior) -> {cal.fitted_cudnn_efficiency:.3f} "
        f"(fitted); fused issue_ipc {cal.prior_issue_ipc:g} (prior) -> {cal.fitted_issue_ipc:.3f} (fitted), l2_tbps "
        f"{cal.prior_l2_tbps:.2f} (prior) -> {cal.fitted_l2_tbps:.2f} (fitted); calibration factors, not "
        "measurements of those quantities",
        f"  fused modelled with the measured configs ({MEASURED_POINTWISE!r}, {MEASURED_REDUCE_CONV!r}) and code "
        "(taps masked, schedules.COMPILED_POINTWISE_AC3B22C) and the eager stem; 'fitted, configs now' (MODELLED): "
        "the fitted model of the configs and code now (its network with the fused stem), and its ratio to the "
        "fitted model of the measured ones",
        text_table(["scope", "eager-cl ms", "prior (model/meas)", "fitted (model/meas)", "fused-cl ms",
                    "prior (model/meas)", "fitted (model/meas)", "fitted, configs now (/fitted)"], rows, left=2),
        *_anchored_lines(cal),
        f"  held out, a second measurement of the same kernels (MEASURED: {TACTIC_SOURCE}; back-to-back calls on "
        "one input, warm L2 where the input fits): fitted model / it per block: "
        + ", ".join(f"{b} {cal.fused_fitted[b] / TACTIC_TRITON_MS[b]:.2f}" for b in BLOCK_NAMES)
        + "; the first run's fused-cl / it: "
        + ", ".join(f"{b} {FUSED_CL_MS[b] / TACTIC_TRITON_MS[b]:.2f}" for b in BLOCK_NAMES),
        f"  pointwise launches of a block, ms (MEASURED: {TUNED_SOURCE}, do_bench with host time; the model: "
        f"fitted figures, gaps included); issue_ipc is fitted to the sum of the {FITTED_POINTWISE[1]} - "
        f"{FITTED_POINTWISE[0]} growth",
        text_table(["config", "block", "measured", "model", "measured - base", "model - base", "role"], pw_rows,
                   left=2),
    ]


__all__ = ["COMPILE_NET_MS", "EAGER_CL_MS", "FITTED_POINTWISE", "FUSED_CL_MS", "MEASURED_POINTWISE",
           "MEASURED_REDUCE_CONV", "MeasuredCalibration", "POINTWISE_MS", "SOURCE", "TACTIC_SOURCE",
           "TACTIC_TRITON_MS", "TUNED_SOURCE", "blocks_ms", "calibrate_measured", "format_measured",
           "outside_blocks_ms", "pointwise_ms", "stem_fusion_ms", "unscheduled_ms"]
