"""The bench report as a PNG (``--plot``): img/s against batch, one panel per scope and (mode,
dtype), one line per method (fused solid, baselines dashed). Needs matplotlib."""

from __future__ import annotations

from pathlib import Path

from fused_inception.spec import BLOCK_NAMES
from fused_inception.tools.bench.cases import METHODS, STEM
from fused_inception.tools.bench.report import methods_in, sorted_cases


def plot(report: dict, path: str) -> None:
    """Throughput (img/s) against batch, one panel per scope and (mode, dtype), a line per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib "
                           "(or the bench extra: pip install 'fused-inception[bench]')") from err
    cases = sorted_cases(report)
    combos = list(dict.fromkeys((c["mode"], c["dtype"]) for c in cases))
    scopes = [s for s in ("net", STEM, *BLOCK_NAMES) if any(c["scope"] == s for c in cases)]
    fig, axes = plt.subplots(len(scopes), len(combos), figsize=(4.2 * len(combos), 2.8 * len(scopes)),
                             squeeze=False)
    for i, scope in enumerate(scopes):
        for j, (mode, dtype) in enumerate(combos):
            ax = axes[i][j]
            sel = [c for c in cases if c["scope"] == scope and c["mode"] == mode and c["dtype"] == dtype]
            for m in methods_in(report):
                pts = sorted((c["batch"], c["results"][m]["img_per_s"]) for c in sel
                             if m in c["results"] and "img_per_s" in c["results"][m])
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                            linestyle="-" if METHODS[m].fused else "--", label=m)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{scope} {mode} {dtype}", fontsize=9)
            ax.set_xlabel("batch", fontsize=8)
            ax.set_ylabel("img/s", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = [], []
    for row in axes:
        for ax in row:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
    env = report["environment"]
    fig.suptitle(f"{env['device_name']} - {report['label']}", fontsize=10)
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.9, 0.97))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
