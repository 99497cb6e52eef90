"""``python -m fused_inception plan``: the launch-by-launch cost model of fused_inception.tools.plan as tables.

Interface for the CLI dispatcher: ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import json

from dataclasses import replace

from fused_inception.dtypes import DTYPE_NAMES
from fused_inception.spec import BLOCK_NAMES, VARIANTS
from fused_inception.tools.plan.compare import BLOCK_TARGET, NETWORK_TARGET, Comparison, compare
from fused_inception.tools.plan.fused import modelled_dot_precision
from fused_inception.tools.plan.gpus import GPUS
from fused_inception.tools.plan.kernelbench import GOOGLENET, INCEPTION_MODULE, ISSUE_QUOTED, Calibration, calibrate
from fused_inception.tools.plan.latency import figures_for
from fused_inception.tools.plan.measured import calibrate_measured, format_measured
from fused_inception.tools.plan.model import Plan, build_plan
from fused_inception.tools.plan.roofline import DEFAULT_LAUNCH_OVERHEAD_US, launch_time
from fused_inception.tools.tables import text_table

DESCRIPTION = (
    "Model every launch of the fused and the eager GoogLeNet (inference): FLOPs, minimal HBM bytes, "
    "per-block eager vs fused traffic and FLOP overhead, a datasheet roofline for H100 SXM and "
    "H200 SXM, and a latency-aware model of eager vs today's vs the pipelined fused kernels, "
    "calibrated against KernelBench's published timings, and the model against this project's H200 "
    "measurement. Everything else is modelled; needs no GPU."
)

MB = 1e6
GB = 1e9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=VARIANTS, default="torchvision",
                        help="GoogLeNet variant (default: torchvision)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (default: 256)")
    parser.add_argument("--size", type=int, default=224, help="input height = width (default: 224)")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default="bfloat16",
                        help="activation and weight dtype (default: bfloat16)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                        help="float32 only: convs and fused kernels at the TF32 peak (PyTorch's default "
                             "cudnn.allow_tf32=True); --no-tf32: fp32 non-tensor peak")
    parser.add_argument("--launch-overhead-us", type=float, default=DEFAULT_LAUNCH_OVERHEAD_US,
                        help=f"assumed fixed cost per launch in microseconds (default: {DEFAULT_LAUNCH_OVERHEAD_US})")
    parser.add_argument("--l2-tbps", type=float, default=None,
                        help="assumed L2 bandwidth in TB/s (no datasheet figure): the roofline then also "
                             "charges the fused kernels' scratch traffic (default: not charged), and the "
                             "latency model uses it instead of its own figure (5.5 TB/s x SMs / 114)")
    parser.add_argument("--host-us", type=float, default=None,
                        help="latency model: host cost of issuing one launch in microseconds (default: "
                             "fitted to KernelBench's published GoogLeNet time)")
    parser.add_argument("--bias-in-conv", action="store_true",
                        help="paper variant: count the conv bias as fused into the cuDNN conv (ATen "
                             "actually adds it in a separate kernel, the default here)")
    parser.add_argument("--per-launch", action="store_true",
                        help="also list every launch of both networks")
    parser.add_argument("--json", metavar="PATH", help="write the whole plan as JSON to PATH")


def run(args: argparse.Namespace) -> int:
    try:
        plan = build_plan(args.variant, args.batch, args.size, args.dtype, tf32=args.tf32,
                          launch_overhead_us=args.launch_overhead_us, l2_tbps=args.l2_tbps,
                          bias_add_separate=not getattr(args, "bias_in_conv", False))
    except ValueError as err:
        print(f"error: {err}")
        return 2
    cal = calibrate()
    host_us = cal.fitted_host_us if args.host_us is None else args.host_us
    comparisons = []
    for gpu in GPUS:
        fig = replace(figures_for(gpu), host_us=host_us)
        if args.l2_tbps:
            fig = replace(fig, l2_tbps=args.l2_tbps)
        comparisons.append(compare(gpu, args.variant, args.batch, args.size, args.dtype, args.tf32, fig))
    measured = calibrate_measured(host_us)
    print(format_plan(plan, per_launch=args.per_launch))
    print()
    print(format_latency(comparisons, cal, per_launch=args.per_launch))
    print()
    print("\n".join(format_measured(measured)))
    if args.json:
        data = plan.to_dict()
        data["latency"] = {"calibration": cal.to_dict(), "comparisons": [c.to_dict() for c in comparisons],
                           "measured_calibration": measured.to_dict()}
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def format_plan(plan: Plan, per_launch: bool = False) -> str:
    """The datasheet model as text: headline, per-block launches and bytes, the fused blocks'
    FLOPs, the roofline per GPU, every launch (``per_launch``), the assumptions."""
    out = _headline(plan) + [""]
    out += _traffic_table(plan) + [""]
    out += _flops_table(plan) + [""]
    out += _roofline_section(plan) + [""]
    if per_launch:
        out += _launch_tables(plan)
    out.append("Assumptions:")
    out += [f"- {a}" for a in plan.assumptions]
    return "\n".join(out)


def _headline(p: Plan) -> list[str]:
    e_tot = sum(l.hbm_bytes for l in p.eager)
    f_tot = sum(l.hbm_bytes for l in p.fused)
    f_high = sum(l.hbm_bytes_high for l in p.fused)
    useful = sum(l.flops for l in p.eager)
    return [
        f"GoogLeNet inference plan: {p.variant} variant, batch {p.batch}, {p.dtype}, input 3x{p.size}x{p.size}, eval; "
        f"fused kernels' dots: input_precision {modelled_dot_precision(p.dtype, p.tf32)!r}",
        f"useful work {useful / 2 / p.batch / 1e9:.3f} GMAC/image ({useful / 1e12:.3f} TFLOP per batch); "
        f"eager {len(p.eager)} launches, {e_tot / GB:.2f} GB HBM; fused {len(p.fused)} launches, "
        f"{f_tot / GB:.2f} GB HBM ({f_high / GB:.2f} GB pessimistic)",
    ]


def _outside_blocks(p: Plan) -> str:
    """What the fused network does outside its Inception blocks, as the plan's launches say."""
    if any(l.kind == "stem_epilogue" for l in p.fused):
        return ("pool3/4 and head are eager in both; the fused stem runs each conv unit's conv, then one "
                "epilogue for its BN, ReLU and max-pool")
    return "stem, pool3/4 and head are eager in both"


def _traffic_table(p: Plan) -> list[str]:
    """Per block: launches and minimal HBM bytes, eager vs fused."""
    e_tot = sum(l.hbm_bytes for l in p.eager)
    f_tot = sum(l.hbm_bytes for l in p.fused)
    f_high = sum(l.hbm_bytes_high for l in p.fused)
    rows = []
    for b in p.blocks:
        rows.append([b.block, b.shape, f"{b.input_bytes / MB:.1f}" if b.input_bytes else "",
                     b.eager_launches, f"{b.eager_hbm_bytes / MB:.1f}", b.fused_launches,
                     f"{b.fused_hbm_bytes / MB:.1f}", f"{b.bytes_ratio:.2f}x", f"{b.fused_hbm_bytes_high / MB:.1f}"])
    rows.append(["total", "", "", len(p.eager), f"{e_tot / MB:.1f}", len(p.fused), f"{f_tot / MB:.1f}",
                 f"{e_tot / f_tot:.2f}x", f"{f_high / MB:.1f}"])
    return [f"Launches and minimal HBM traffic per block (MB = 1e6 bytes; {_outside_blocks(p)})",
            text_table(["block", "HxW Cin>Cout", "input MB", "eager launches", "eager HBM MB",
                        "fused launches", "fused HBM MB", "eager/fused", "fused high MB"], rows, left=2)]


def _flops_table(p: Plan) -> list[str]:
    """Per fused Inception block: useful, executed and issued FLOPs, halo and scratch bytes."""
    rows = []
    for b in p.blocks:
        if not b.fused_launches or b.block in ("stem", "pool3", "pool4", "head"):
            continue
        rows.append([b.block, f"{b.mmac_per_image:.1f}", f"{b.useful_flops / GB:.1f}",
                     f"{b.fused_exec_flops / GB:.1f}", _pct(b.exec_overhead),
                     f"{b.fused_padded_flops / GB:.1f}", _pct(b.padded_overhead),
                     f"{b.halo_bytes / MB:.1f}", f"{b.l2_bytes / MB:.1f}", f"{b.scratch_bytes / MB:.2f}"])
    inc = [b for b in p.blocks if b.block not in ("stem", "pool3", "pool4", "head")]
    if inc:
        u, x, pd = (sum(getattr(b, a) for b in inc) for a in ("useful_flops", "fused_exec_flops", "fused_padded_flops"))
        rows.append(["blocks", f"{sum(b.mmac_per_image for b in inc):.1f}", f"{u / GB:.1f}", f"{x / GB:.1f}",
                     _pct(x / u - 1), f"{pd / GB:.1f}", _pct(pd / u - 1),
                     f"{sum(b.halo_bytes for b in inc) / MB:.1f}", f"{sum(b.l2_bytes for b in inc) / MB:.1f}",
                     f"{max(b.scratch_bytes for b in inc) / MB:.2f}"])
    return ["Fused Inception blocks: executed vs useful work (GFLOP per batch; exec = halo recompute on each "
            "tile's pixel run rounded up to BLOCK_HALO + last-tile BLOCK_M rounding; issued = exec + channel "
            "padding of the dot blocks)",
            text_table(["block", "MMAC/img", "useful GFLOP", "exec GFLOP", "exec", "issued GFLOP", "issued",
                        "halo MB", "L2 scratch MB", "scratch MB"], rows)]


def _roofline_section(p: Plan) -> list[str]:
    """The roofline table, the speed-ups per GPU (whole network and Inception blocks alone), what
    is not charged, the datasheet figures."""
    rows = []
    by_gpu: dict[str, dict[str, object]] = {}
    for r in p.rooflines:
        label = {"fused-high": "fused (high bytes)"}.get(r.network, r.network)
        by_gpu.setdefault(r.gpu, {})[r.network] = r
        rows.append([r.gpu, label, r.launches, f"{r.flops / 1e12:.3f}", f"{r.hbm_bytes / GB:.2f}",
                     f"{r.compute_s * 1e3:.3f}", f"{r.memory_s * 1e3:.3f}", f"{r.roofline_s * 1e3:.3f}",
                     f"{r.img_per_s_no_overhead:,.0f}", f"{r.total_s * 1e3:.3f}", f"{r.img_per_s:,.0f}"])
    out = [f"Roofline (datasheet peaks, dense; per launch max(FLOP/peak, bytes/BW), summed; "
           f"'+overhead' adds an assumed {p.launch_overhead_us:g} us per launch)",
           text_table(["GPU", "network", "launches", "TFLOP", "HBM GB", "compute ms", "memory ms", "roofline ms",
                       "img/s", "+overhead ms", "img/s"], rows, left=2)]
    blocks = set(BLOCK_NAMES)
    for gpu_obj in GPUS:
        rs = by_gpu[gpu_obj.name]
        e, f, h = rs["eager"], rs["fused"], rs["fused-high"]
        out.append(f"  {gpu_obj.name}: fused/eager speed-up {e.roofline_s / f.roofline_s:.2f}x roofline "
                   f"({e.roofline_s / h.roofline_s:.2f}x with high bytes), {e.total_s / f.total_s:.2f}x with overhead "
                   f"({e.total_s / h.total_s:.2f}x high)")

        def t(launches, inside, high=False, g=gpu_obj):
            return sum(launch_time(l, g, p.dtype, p.tf32, high=high, l2_tbps=p.l2_tbps)
                       for l in launches if (l.block in blocks) == inside)

        te, tf, th = t(p.eager, True), t(p.fused, True), t(p.fused, True, True)
        out.append(f"    Inception blocks alone: eager {te * 1e3:.3f} ms, fused {tf * 1e3:.3f} ms ({te / tf:.2f}x; "
                   f"{te / th:.2f}x with high bytes); stem, pools and head: eager {t(p.eager, False) * 1e3:.3f} ms, "
                   f"fused {t(p.fused, False) * 1e3:.3f} ms ({_outside_blocks(p)})")
    l2 = sum(l.l2_bytes for l in p.fused)
    reread = sum(l.cache_reread_bytes for l in p.fused)
    if p.l2_tbps:
        out.append(f"  scratch L2 traffic {l2 / GB:.2f} GB charged at an assumed {p.l2_tbps:g} TB/s L2 bandwidth")
    else:
        out.append(f"  not charged: scratch L2 traffic {l2 / GB:.2f} GB ({l2 / 5e12 * 1e3:.2f} ms at 5 TB/s, "
                   f"{l2 / 10e12 * 1e3:.2f} ms at 10 TB/s if it did not overlap; no datasheet L2 bandwidth, "
                   f"see --l2-tbps) and other L1/L2 re-reads {reread / GB:.2f} GB")
    gpus = ", ".join(f"{g.name} {g.half_tflops:g}/{g.tf32_tflops:g}/{g.fp32_tflops:g} TFLOP/s "
                     f"(half/TF32/fp32), {g.hbm_tbps:g} TB/s, {g.l2_mb:g} MB L2" for g in GPUS)
    out.append(f"  datasheet: {gpus}")
    return out


def _launch_tables(p: Plan) -> list[str]:
    """Every eager and every fused launch with its roofline time on the first GPU (no overhead)."""
    out = []
    gpu = GPUS[0]
    for net, launches in (("eager", p.eager), ("fused", p.fused)):
        rows = []
        for l in launches:
            t = launch_time(l, gpu, p.dtype, p.tf32)
            t_mem = l.hbm_bytes / (gpu.hbm_tbps * 1e12)
            rows.append([l.block, l.name, l.kind, f"{l.flops / GB:.2f}", f"{l.padded_flops / GB:.2f}",
                         f"{l.hbm_bytes / MB:.1f}", f"{l.halo_bytes / MB:.1f}", f"{l.l2_bytes / MB:.1f}",
                         f"{t * 1e6:.1f}", "memory" if t_mem >= t else "compute"])
        out.append(f"Every {net} launch ({len(launches)}; time = roofline on {gpu.name}, no overhead)")
        out.append(text_table(["block", "launch", "kind", "GFLOP", "issued GFLOP", "HBM MB", "halo MB", "L2 MB",
                               "us", "bound"], rows, left=3))
        out.append("")
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def format_latency(comparisons: list[Comparison], cal: Calibration, per_launch: bool = False) -> str:
    """The latency-aware model's tables (every figure modelled; see fused_inception.tools.plan.latency)."""
    c0 = comparisons[0]
    f0 = c0.figures
    out = [
        f"Latency-aware model (MODELLED, not measured): {c0.variant}, batch {c0.batch}, {c0.dtype}. Per launch "
        f"max(MMA at {f0.wgmma_efficiency:g}x peak for wgmma / {f0.mma_sync_efficiency:g}x for mma.sync, HBM bytes "
        f"at {f0.hbm_efficiency:g}x bandwidth, L1/L2 bytes at the L2 bandwidth (L1 hits at "
        f"{f0.l1_bytes_per_clk:g} B/clk/SM), exposed latency chain at {f0.l2_hit_cycles:g} + "
        f"{f0.step_overhead_cycles:g} cycles per round trip); eager convs at {f0.cudnn_efficiency:g}x peak; "
        f"{f0.gap_us:g} us GPU gap and {f0.host_us:.1f} us host issue per launch.",
        "'today' = the kernels of commit d2e917c (3 launches per block, the eager stem); 'pipelined' = the "
        "redesign (4: branch 1 and the pool projection launched apart), with kernels/configs.py's current tile "
        "constants, and the fused stem (torchvision: conv + one BN/ReLU/max-pool epilogue per conv unit, charged "
        "by its HBM bytes like the eager launches it replaces). Block time = sum of its launches + gaps; network = "
        "timeline (host included).",
    ]
    for c in comparisons:
        f = c.figures
        rows = []
        for b in c.blocks:
            rows.append([b.block, _ms(b.eager), _ms(b.today), f"{b.today / b.eager:.2f}x", b.today_bound,
                         _ms(b.pipelined), f"{b.pipelined / b.eager:.2f}x", b.pipelined_bound,
                         "yes" if b.pipelined <= BLOCK_TARGET * b.eager else "no"])
        n = c.network
        rows.append(["network", _ms(n["eager"]), _ms(n["today"]), f"{n['today'] / n['eager']:.2f}x", "",
                     _ms(n["pipelined"]), f"{n['pipelined'] / n['eager']:.2f}x", "",
                     "yes" if n["pipelined"] <= NETWORK_TARGET * n["eager"] else "no"])
        out.append("")
        out.append(f"{c.gpu} (modelled; L2 {f.l2_tbps:.2f} TB/s, clock {f.clock_ghz:g} GHz, {f.gpu.sms} SMs): "
                   f"target pipelined/eager <= {BLOCK_TARGET:g} per block, <= {NETWORK_TARGET:g} network")
        out.append(text_table(["block", "eager ms", "today ms", "today/eager", "today bound", "pipelined ms",
                               "pipe/eager", "pipe bound", "target met"], rows))
        if per_launch:
            rows = [[net, t.launch, t.detail, _ms(t.mma), _ms(t.hbm), _ms(t.l2), _ms(t.latency), t.bound]
                    for net in ("today", "pipelined") for t in c.launches[net]
                    if t.launch.startswith(("pointwise_pool", "reduce_conv"))]
            out.append(f"Fused launches on {c.gpu} (modelled ms per bound)")
            out.append(text_table(["schedule", "launch", "grid and tiles", "mma", "hbm", "L1/L2", "latency", "bound"],
                                  rows, left=3))
    out += [
        "",
        f"Calibration (KernelBench {GOOGLENET.problem}, batch 10, fp32, eager, published on "
        f"{GOOGLENET.gpu.name}: {cal.measured_ms:g} ms, torch.compile {GOOGLENET.compile_ms:g} ms (not modelled); "
        f"{GOOGLENET.source}):",
        f"  fitted constant: host issue cost per launch, {cal.prior_host_us:g} us (prior) -> "
        f"{cal.fitted_host_us:.1f} us ({cal.launches} launches); the only fitted constant the tables above use",
        f"  predicted before the fit {cal.prior_ms:.3f} ms ({cal.prior_ratio:.2f}x the measurement), after "
        f"{cal.fitted_ms:.3f} ms ({cal.fitted_ratio:.2f}x, by construction); GPU side alone {cal.gpu_only_ms:.3f} ms",
        f"  unfitted check, {INCEPTION_MODULE.problem} (one 4a-shaped block at batch 10, 224x224, fp32; GPU "
        f"bound): predicted {cal.module_ms:.2f} ms vs published {cal.module_measured_ms:g} ms "
        f"({cal.module_ratio:.2f}x)",
        f"  issue 12 quotes {ISSUE_QUOTED.eager_ms:g} ms for {GOOGLENET.problem} on an H100 (not in the stored "
        f"timing files): predicted on H100 SXM {cal.quoted_predicted_ms:.3f} ms ({cal.quoted_ratio:.2f}x)",
    ]
    return "\n".join(out)

