"""The bench report (``run``'s dict) as text and as markdown: aligned and markdown tables of
medians, percentiles, img/s, peak memory and speedups (warm-cache cases marked), the environment
(commit, source hash, driver, versions), gpu_check.sh's step table when it has one, the kernel
configs the fused blocks launch, the tactic each fused block ran and why, and the raw timings."""

from __future__ import annotations

from pathlib import Path

from fused_inception.dtypes import SHORT_NAMES, dtype_name
from fused_inception.tools.bench.cases import METHODS, MODES, SCOPES
from fused_inception.tools.bench.steps import format_steps
from fused_inception.tools.parity import format_markdown as parity_markdown
from fused_inception.tools.tables import md_table, text_table
from fused_inception.tools.tactic_report import tactic_summary

WARM_MARK = "(warm L2)"  # marks a case whose timings are warm-cache ones (cases.warm_cache)
RAW_IN_MARKDOWN = 40  # raw timings listed per measurement in the markdown (the JSON has them all)


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 100 else f"{x:.1f}"


def _cell_time(res: dict) -> str:
    if "median_ms" in res:
        return _ms(res["median_ms"])
    if "error" in res:
        return "error"
    return "skipped"


def sorted_cases(report: dict) -> list[dict]:
    return sorted(report["cases"], key=lambda c: (MODES.index(c["mode"]), list(SHORT_NAMES).index(c["dtype"]),
                                                  SCOPES.index(c["scope"]) if c["scope"] in SCOPES else 99,
                                                  c["batch"]))


def methods_in(report: dict) -> list[str]:
    seen = {m for c in report["cases"] for m in c["results"]}
    return [m for m in METHODS if m in seen]


def long_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """One row per case and method: median, p20-p80, img/s, peak MB, time / best fused time."""
    header = ["scope", "mode", "dtype", "batch", "method", "median ms", "p20-p80 ms", "img/s", "peak MB",
              "t/t(best fused)", "check", "cache"]
    rows = []
    for c in sorted_cases(report):
        fused_times = [r["median_ms"] for m, r in c["results"].items() if METHODS[m].fused and "median_ms" in r]
        best = min(fused_times) if fused_times else None
        cache = {True: "warm", False: "cold"}.get(c.get("warm_cache"), "-")
        for m in [m for m in METHODS if m in c["results"]]:
            r = c["results"][m]
            if "median_ms" in r:
                mem = r.get("peak_mem_mb")
                rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), m, _ms(r["median_ms"]),
                             f"{_ms(r['p20_ms'])}-{_ms(r['p80_ms'])}", f"{r['img_per_s']:.1f}",
                             "n/a" if mem is None else f"{mem:.1f}",
                             f"{r['median_ms'] / best:.2f}" if best else "-", r.get("check", ""), cache])
            else:
                why = r.get("error") or r.get("skipped") or "?"
                rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), m, "-", "-", "-", "-", "-",
                             ("error: " if "error" in r else "skipped: ") + why[:60], cache])
    return header, rows


def speedup_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """One row per case and fused method: baseline median / fused median for each baseline."""
    baselines = [m for m in methods_in(report) if not METHODS[m].fused]
    header = ["scope", "mode", "dtype", "batch", "fused method", *(f"vs {b}" for b in baselines)]
    rows = []
    for c in sorted_cases(report):
        for f, ratios in c.get("speedup", {}).items():
            rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), f,
                         *(f"{ratios[b]:.2f}x" if b in ratios else "-" for b in baselines)])
    return header, rows


def tactic_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """One row per case and fused method: which tactic its blocks ran, and why
    (``tactic_report.tactic_summary`` of the result's ``tactics``)."""
    header = ["scope", "mode", "dtype", "batch", "fused method", "tactic (blocks): why"]
    rows = []
    for c in sorted_cases(report):
        for m in [m for m in METHODS if METHODS[m].fused and m in c["results"]]:
            ran = c["results"][m].get("tactics")
            if ran:
                rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), m, tactic_summary(ran)])
    return header, rows


def format_text(report: dict) -> str:
    env = report["environment"]
    lines = [f"bench: {env['device_name']} ({env['device']}), torch {env['torch']}, triton {env['triton']}, "
             f"commit {env['git_commit']}, source {env.get('source_hash')}", f"== {report['label']} =="]
    lines += [f"note: {n}" for n in report.get("notes", [])]
    lines += ["", text_table(*long_rows(report), left=5)]
    header, rows = speedup_rows(report)
    if rows:
        lines += ["", "Speedup of each fused method (baseline median / fused median; > 1: fused is faster)",
                  text_table(header, rows, left=5)]
    header, rows = tactic_rows(report)
    if rows:
        lines += ["", "Tactics the fused blocks ran", text_table(header, rows, left=6)]
    return "\n".join(lines)


def format_markdown(report: dict, parity: dict | None = None) -> str:
    """The report as markdown: environment, notes, a compact medians table per mode and dtype, the
    speedups, the full table, the parity table (``parity``: a parity report), and the raw timings
    in a collapsed section."""
    env = report["environment"]
    title = env["device_name"] if env["device"] == "cuda" else f"CPU ({env['device_name']})"
    lines = [f"# fused_inception benchmark: {title}", ""]
    lines += _provenance_lines(report)
    if report.get("steps") is not None:
        lines += ["", "## Steps", "", format_steps(report["steps"])]
    lines += ["", f"**{report['label']}**", ""]
    lines += [f"- {n}" for n in report.get("notes", [])]
    lines += ["", kernel_configs_note(report), ""]
    lines += _medians_section(report)
    header, rows = speedup_rows(report)
    if rows:
        lines += ["## Speedups (baseline median / fused median; > 1: fused is faster)", "",
                  md_table(header, rows), ""]
    header, rows = tactic_rows(report)
    if rows:
        lines += ["## Tactics the fused blocks ran", "", md_table(header, rows), ""]
    lines += ["## All measurements", "", md_table(*long_rows(report)), ""]
    if parity is not None:
        lines += ["## Parity", "", parity_markdown(parity), ""]
    lines += _raw_timings(report)
    return "\n".join(lines)


def _provenance_lines(report: dict) -> list[str]:
    """Markdown bullets: device, versions, commit, command and the timing settings."""
    env = report["environment"]
    s = report["settings"]
    gpu = env["device"] == "cuda"
    rotation = (f"inputs rotated (enough to cycle through {s.get('rotate_mb'):g} MB)" if s.get("rotate_mb")
                else "2 inputs alternated")
    facts = [("device", env["device_name"]), ("driver", env.get("driver") or "n/a"),
             ("CUDA", env.get("cuda") or "n/a"), ("cuDNN", env.get("cudnn") or "n/a"),
             ("torch", env["torch"]), ("triton", env["triton"]),
             ("git commit", env["git_commit"] or "unknown"), ("source hash", env.get("source_hash")),
             ("date", env["date"]), ("command", f"`{env['command']}`"),
             ("variant", s.get("variant")), ("image size", s.get("size")),
             ("timing", f"warm-up {s.get('warmup')} calls, >= {s.get('repeat')} calls and >= {s.get('rep_ms')} ms "
                        f"measured per method; {rotation}" if s else None),
             ("threads", s.get("threads") if not gpu else None),
             ("total bench time", f"{report.get('seconds')} s"),
             ("runs merged", len(report["merged_from"]) if report.get("merged_from") else None)]
    return [f"- **{k}**: {v}" for k, v in facts if v is not None]


def _medians_section(report: dict) -> list[str]:
    """Markdown: one table of median ms per (mode, dtype), a scope per row, with the best fused
    method against the best baseline; the warm-cache caveat when a case has one."""
    methods = methods_in(report)
    groups: dict[tuple[str, str], list[dict]] = {}
    for c in sorted_cases(report):
        groups.setdefault((c["mode"], c["dtype"]), []).append(c)
    lines = ["## Median ms per call (lower is better)", ""]
    if not report["cases"]:
        lines += ["No bench results in this report.", ""]
    for (mode, dtype), cases in groups.items():
        lines += [f"### {mode}, {dtype}", ""]
        header = ["scope", "batch", *methods, "best fused vs best baseline"]
        rows = []
        for c in cases:
            res = c["results"]
            cells = [_cell_time(res[m]) if m in res else "" for m in methods]
            fused = [(r["median_ms"], m) for m, r in res.items() if METHODS[m].fused and "median_ms" in r]
            base = [(r["median_ms"], m) for m, r in res.items() if not METHODS[m].fused and "median_ms" in r]
            best = (f"{min(base)[0] / min(fused)[0]:.2f}x ({min(fused)[1]} vs {min(base)[1]})"
                    if fused and base else "-")
            rows.append([c["scope"] + (f" {WARM_MARK}" if c.get("warm_cache") else ""), str(c["batch"]), *cells,
                         best])
        lines += [md_table(header, rows), ""]
    warm = [c for c in report["cases"] if c.get("warm_cache")]
    if warm:
        l2 = report["environment"].get("l2_cache_mb")
        lines += [f"{WARM_MARK} warm-cache timings: the case's rotated inputs ("
                  + ", ".join(sorted({f"{c['rotated_mb']:g} MB" for c in warm}))
                  + f") are under twice the L2 ({l2:g} MB), so an input may still be in the L2 when it comes "
                  "round again: these cells are faster than a stream of new inputs would be.", ""]
    return lines


def _raw_timings(report: dict) -> list[str]:
    """Markdown: every raw timing (at most RAW_IN_MARKDOWN per measurement) in a collapsed section."""
    lines = ["<details><summary>Raw timings (ms per call)</summary>", ""]
    for c in sorted_cases(report):
        for m, r in c["results"].items():
            if "times_ms" in r:
                t = r["times_ms"]
                more = f" ... ({len(t)} in all: see the JSON)" if len(t) > RAW_IN_MARKDOWN else ""
                lines.append(f"- {c['scope']} {c['mode']} {c['dtype']} b{c['batch']} {m}: "
                             + ", ".join(f"{x:.4g}" for x in t[:RAW_IN_MARKDOWN]) + more)
    lines += ["", "</details>", ""]
    return lines


def kernel_configs_note(report: dict) -> str:
    """Markdown: the kernel config the fused blocks launched per kernel, dtype and dot precision
    (name and fields, as recorded in the report's environment when it ran: this GPU's tuned file,
    or the defaults of kernels/configs.py); on a GPU, those this report's runs launched are marked
    (fused methods run, their dtypes, fp32 dots in TF32 when --tf32)."""
    env = report["environment"]
    gpu = env["device"] == "cuda"
    launched: set[tuple[str, str]] = set()
    for settings in report.get("settings_all") or [report.get("settings")]:
        if not settings or not any(METHODS[m].fused for m in settings.get("methods", ())):
            continue
        for d in settings.get("dtypes", ()):
            launched.add((dtype_name(SHORT_NAMES[d]), "tf32" if d == "fp32" and settings.get("tf32") else "ieee"))
    header = ["kernel", "dtype", "dot precision", "config", "fields", "source"]
    rows = []
    for c in env["kernel_configs"]:
        fields = ", ".join(f"{k}={v}" for k, v in c["fields"].items())
        row = [c["kernel"], c["dtype"], c["input_precision"], c["config"], fields, "tuned" if c["tuned"] else "default"]
        rows.append(row + ["yes" if (c["dtype"], c["input_precision"]) in launched else ""] if gpu else row)
    where = ("'launched' marks the ones this report's fused methods use (their dtypes; fp32 dots in TF32 "
             "when TF32 is on)." if gpu else
             "On the CPU (interpreter off) the fused blocks run their CPU tactics, not the Triton kernels: none "
             "of these ran here.")
    tuned = env["tuned_configs"]
    if tuned is None:
        source = "the defaults of kernels/configs.py (no tuned file for this device)"
    elif tuned.startswith("refused:"):
        source = f"none: this GPU's tuned file was {tuned}"
    else:
        source = f"this GPU's tuned file `{Path(tuned).name}` where it chooses, else the defaults of kernels/configs.py"
    intro = f"**Kernel configs**: one per kernel, dtype and dot precision: {source}. {where}"
    return intro + "\n\n" + md_table(header + ["launched"] if gpu else header, rows)
