"""Calibration of the latency model (``latency``) against this project's own GPU measurement.

The first GPU run of the project (``benchmarks/gpu_check.sh`` on an H200 at commit ac3b22c,
``benchmarks/results/nvidia-h200-20261130-2337.json``: torch 2.11, triton 3.6, cuDNN 9.19) timed
the nine torchvision Inception blocks alone and the whole network, inference, bf16, batch 256,
channels_last, cuDNN autotuned, inputs rotated through 192 MB, CUDA-event medians: eager
channels_last (``eager-cl``: the model's eager cuDNN) and the fused blocks (``fused-cl``: the
untuned Triton kernels, the model's "pipelined" schedule with the same configs).

What is fitted, one constant per side, each so that the model's **sum over the nine blocks**
equals the measured sum:

* eager: ``cudnn_efficiency`` (the fraction of the dense peak eager convs reach; prior 0.6);
* fused: ``l2_tbps`` (every pipelined launch of the model is L2-bound at batch 256; prior 6.4 TB/s
  from a microbenchmark of another part).

The fused side is modelled with the configs that ran: the pointwise default of ac3b22c is the
candidate ``np64`` now (``MEASURED_POINTWISE``; the default has since gained 128-wide channels_last
pool tiles). The fitted figures applied to the configs picked now give the calibrated prediction
of the current kernels (``fused_now``): modelled, not measured.

What is held out: the per-block residuals after the fit, and the whole network (stem, pools and
head included), which no fit saw. Each fitted constant absorbs everything its side mis-models
(launch gaps, cuDNN's algorithm choices, pool taps, tails), so it is a calibration factor, not a
measurement of that quantity. One run on one GPU at one batch: it says how far off the priors
are, not that the fitted values hold at other batches or on other GPUs. ``plan``'s tables keep
the priors; this section is printed beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fused_inception.kernels.configs import config_by_name
from fused_inception.spec import BLOCK_NAMES
from fused_inception.tools.plan.compare import compare
from fused_inception.tools.plan.eager import eager_launches
from fused_inception.tools.plan.gpus import H200_SXM
from fused_inception.tools.plan.latency import LatencyFigures, eager_time, figures_for, schedule_time
from fused_inception.tools.plan.schedules import block_schedules
from fused_inception.tools.plan.shapes import block_shapes

SOURCE = "benchmarks/results/nvidia-h200-20261130-2337.json (gpu_check.sh, commit ac3b22c)"
VARIANT, BATCH, SIZE, DTYPE = "torchvision", 256, 224, "bfloat16"
# the pointwise config the measurement ran (ac3b22c's default, by its name now)
MEASURED_POINTWISE = "np64"

# measured median ms (the source's "infer" cases, bf16, batch 256): eager channels_last and fused
# channels_last, per block and for the network (tests/tools/test_plan.py checks them against it)
EAGER_CL_MS: dict[str, float] = {"3a": 1.079, "3b": 1.559, "4a": 0.648, "4b": 0.680, "4c": 0.675,
                                 "4d": 0.729, "4e": 0.837, "5a": 0.498, "5b": 0.461, "net": 12.457}
FUSED_CL_MS: dict[str, float] = {"3a": 0.649, "3b": 0.999, "4a": 0.404, "4b": 0.461, "4c": 0.623,
                                 "4d": 0.525, "4e": 0.625, "5a": 0.456, "5b": 0.416, "net": 10.269}


def eager_block_ms(fig: LatencyFigures) -> dict[str, float]:
    """Modelled ms of each block's eager launches (gap + time each), as ``compare`` sums them."""
    out = {name: 0.0 for name in BLOCK_NAMES}
    for launch in eager_launches(VARIANT, BATCH, SIZE, DTYPE):
        if launch.block in out:
            out[launch.block] += 1e3 * (fig.gap_us * 1e-6 + eager_time(launch, fig, DTYPE).total)
    return out


def fused_block_ms(fig: LatencyFigures) -> dict[str, float]:
    """Modelled ms of each block's "pipelined" launches (gap + time each), with the measured
    pointwise config."""
    cfg = config_by_name("pointwise_pool", MEASURED_POINTWISE)
    return {name: 1e3 * sum(fig.gap_us * 1e-6 + schedule_time(s, fig, DTYPE).total
                            for s in block_schedules("pipelined", name, spec, BATCH, h, w, DTYPE, fig.gpu.sms,
                                                     pointwise_cfg=cfg))
            for name, (spec, h, w) in block_shapes(VARIANT, SIZE).items()}


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
    eager_prior: dict[str, float]
    eager_fitted: dict[str, float]
    fused_prior: dict[str, float]
    fused_fitted: dict[str, float]
    fused_now: dict[str, float]

    def rows(self) -> list[tuple[str, float, float, float, float, float, float, float]]:
        """(scope, eager measured, prior, fitted, fused measured, prior, fitted, fitted with the
        configs now) per block and net."""
        return [(name, EAGER_CL_MS[name], self.eager_prior[name], self.eager_fitted[name], FUSED_CL_MS[name],
                 self.fused_prior[name], self.fused_fitted[name], self.fused_now[name])
                for name in (*BLOCK_NAMES, "net")]

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(source=SOURCE, eager_measured=dict(EAGER_CL_MS), fused_measured=dict(FUSED_CL_MS))
        return d


def calibrate_measured(host_us: float) -> MeasuredCalibration:
    """Fit cudnn_efficiency and l2_tbps to the measured block sums (H200 SXM figures, ``host_us``
    for the network timelines), and model every block and the network with priors and fits."""
    prior = replace(figures_for(H200_SXM), host_us=host_us)
    eff = _fit("cudnn_efficiency", 0.01, 1.0, sum(EAGER_CL_MS[b] for b in BLOCK_NAMES), eager_block_ms, prior)
    l2 = _fit("l2_tbps", 0.1, 100.0, sum(FUSED_CL_MS[b] for b in BLOCK_NAMES), fused_block_ms, prior)
    fitted = replace(prior, cudnn_efficiency=eff, l2_tbps=l2)
    ran = config_by_name("pointwise_pool", MEASURED_POINTWISE)
    before = compare(H200_SXM, VARIANT, BATCH, SIZE, DTYPE, figures=prior, pointwise_cfg=ran)
    after = compare(H200_SXM, VARIANT, BATCH, SIZE, DTYPE, figures=fitted, pointwise_cfg=ran)
    now = compare(H200_SXM, VARIANT, BATCH, SIZE, DTYPE, figures=fitted)

    def per_block(cmp, field: str) -> dict[str, float]:
        times = {b.block: 1e3 * getattr(b, field) for b in cmp.blocks}
        times["net"] = 1e3 * cmp.network["eager" if field == "eager" else "pipelined"]
        return times

    return MeasuredCalibration(prior.cudnn_efficiency, eff, prior.l2_tbps, l2,
                               per_block(before, "eager"), per_block(after, "eager"),
                               per_block(before, "pipelined"), per_block(after, "pipelined"),
                               per_block(now, "pipelined"))


def format_measured(cal: MeasuredCalibration) -> list[str]:
    """The calibration as text lines for ``plan``."""
    from fused_inception.tools.tables import text_table

    rows = [[name, f"{em:.3f}", f"{ep:.3f} ({ep / em:.2f})", f"{ef:.3f} ({ef / em:.2f})", f"{fm:.3f}",
             f"{fp:.3f} ({fp / fm:.2f})", f"{ff:.3f} ({ff / fm:.2f})", f"{fn:.3f} ({fn / ff:.2f})"]
            for name, em, ep, ef, fm, fp, ff, fn in cal.rows()]
    return [
        f"Calibration against this project's GPU measurement (MEASURED: {SOURCE}; H200, torchvision, bf16, "
        f"batch {BATCH}, channels_last, eager-cl and the untuned fused kernels): one constant fitted per side so that "
        "the nine blocks' modelled sum equals the measured sum; per-block residuals and the network are held out",
        f"  eager cudnn_efficiency {cal.prior_cudnn_efficiency:g} (prior) -> "
        f"{cal.fitted_cudnn_efficiency:.3f} (fitted); fused l2_tbps {cal.prior_l2_tbps:.2f} (prior) -> {cal.fitted_l2_tbps:.2f} (fitted); "
        "calibration factors, not measurements of those quantities",
        f"  fused modelled with the measured pointwise config ({MEASURED_POINTWISE!r}); 'fitted, configs now' "
        "(MODELLED): the fitted model of the configs picked now, and its ratio to the fitted model of the measured "
        "ones",
        text_table(["scope", "eager-cl ms", "prior (model/meas)", "fitted (model/meas)", "fused-cl ms",
                    "prior (model/meas)", "fitted (model/meas)", "fitted, configs now (/fitted)"], rows, left=2),
    ]


__all__ = ["EAGER_CL_MS", "FUSED_CL_MS", "MEASURED_POINTWISE", "MeasuredCalibration", "SOURCE", "calibrate_measured",
           "format_measured"]
