"""Smoke tests of ``python -m fused_inception bench`` and ``parity`` (CI): tiny sizes, the JSON and
markdown they write, merging, the plot's missing-matplotlib error, and the exit codes.

In this suite TRITON_INTERPRET=1 (tests/conftest.py), so an in-process ``parity`` runs the kernels
in the interpreter on the CPU; ``bench`` keeps the interpreter off while it times (the CPU's tactics).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

from fused_inception import tolerances
from fused_inception.tactics import CPU_FASTEST, FROZEN_BN_TRAINING, INFERENCE
from fused_inception.tools import parity
from fused_inception.tools.bench import command as bench
from fused_inception.tools.bench import run as bench_run
from fused_inception.tools.bench import timing as bench_timing

CUDA = torch.cuda.is_available()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _args(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


TINY_BENCH = ["--size", "64", "--batch", "1", "--dtypes", "fp32", "--methods", "eager,eager-cl,fused,fused-cl",
              "--warmup", "0", "--repeat", "1", "--rep-ms", "0", "--no-tf32", "--no-progress"]


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    """One tiny bench run: block 3a and the whole network, inference and a BN-frozen training step."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    before = os.environ.get("TRITON_INTERPRET")
    rc = bench.run(_args(bench, [*TINY_BENCH, "--scopes", "3a,net", "--modes", "infer,finetune", "--json", str(out)]))
    assert rc == 0
    assert os.environ.get("TRITON_INTERPRET") == before, "bench must restore TRITON_INTERPRET"
    return out


def test_bench_json(bench_json):
    report = json.loads(bench_json.read_text())
    assert report["schema"] == bench_run.SCHEMA
    env = report["environment"]
    for key in ("device", "device_name", "torch", "triton", "git_commit", "date", "command"):
        assert key in env
    assert env["torch"] == torch.__version__
    if not CUDA:
        assert report["label"] == bench_run.CPU_LABEL
    cases = {(c["scope"], c["mode"]): c for c in report["cases"]}
    assert set(cases) == {("3a", "infer"), ("net", "infer"), ("3a", "finetune"), ("net", "finetune")}
    assert cases[("3a", "infer")]["input_shape"] == [1, *report["block_input_shapes"]["3a"]]
    for case in report["cases"]:
        res = case["results"]
        assert {"eager", "eager-cl", "fused", "fused-cl"} <= set(res)
        for name, r in res.items():
            assert "error" not in r, f"{case['scope']} {case['mode']} {name}: {r.get('error')}"
            assert len(r["times_ms"]) >= 1 and r["median_ms"] > 0 and r["img_per_s"] > 0
            assert r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
        assert case["speedup"]["fused"]["eager"] > 0
        # each fused result says what every block ran and why; on the CPU the committed defaults
        # (interpreter off while bench times): tactics.CPU_FASTEST of the mode and memory format
        blocks = ["3a"] if case["scope"] == "3a" else list(report["block_input_shapes"])
        for name in ("fused", "fused-cl"):
            ran = res[name]["tactics"]
            assert list(ran) == blocks
            if not CUDA:
                mode = {"infer": INFERENCE, "finetune": FROZEN_BN_TRAINING}[case["mode"]]
                expected = CPU_FASTEST[(mode, "channels_last" if name == "fused-cl" else "nchw")]
                assert {r["tactic"] for r in ran.values()} == {expected}
                assert all("committed CPU measurement" in r["reason"] for r in ran.values())
        assert "tactics" not in res["eager"]
        if case["mode"] == "infer":
            # the fused model computes what eager computes (fp32, TF32 off: 1e-4 for a block, 1e-3 for
            # the network, whose rounding errors grow with depth)
            bound = bench_timing.check_bound("fp32", case["scope"], tf32=False)
            assert case["check_bound"] == bound <= 1e-3
            for name in ("eager-cl", "fused", "fused-cl"):
                assert res[name]["rel_err_vs_eager"] < bound, (case["scope"], name, res[name]["rel_err_vs_eager"])
                assert res[name]["check"] == "ok"


def test_bench_markdown_and_merge(bench_json, tmp_path):
    merged_json, md = tmp_path / "merged.json", tmp_path / "report.md"
    rc = bench.run(_args(bench, ["--merge", str(bench_json), str(bench_json), "--json", str(merged_json),
                                 "--markdown", str(md)]))
    assert rc == 0
    merged = json.loads(merged_json.read_text())
    assert len(merged["cases"]) == 4 and len(merged["merged_from"]) == 2
    text = md.read_text()
    assert text.startswith("# fused_inception benchmark")
    for needle in ("## Median ms per call", "## Speedups", "Raw timings", "**Kernel configs**",
                   "| reduce_conv | float32 | ieee | fma |", "| fused |", "## Tactics the fused blocks ran"):
        assert needle in text, needle


def test_bench_plot(bench_json, tmp_path, monkeypatch, capsys):
    png = tmp_path / "plot.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert bench.run(_args(bench, ["--merge", str(bench_json), "--plot", str(png)])) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert bench.run(_args(bench, ["--merge", str(bench_json), "--plot", str(png)])) == 2
    assert "needs matplotlib" in capsys.readouterr().err


def test_bench_bad_arguments():
    assert bench.run(_args(bench, ["--scopes", "6z"])) == 2
    assert bench.run(_args(bench, ["--methods", "warp-drive"])) == 2


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_parity_one_block(variant, tmp_path):
    out = tmp_path / "parity.json"
    rc = parity.run(_args(parity, ["--variants", variant, "--blocks", "3a", "--no-net",
                                                 "--dtypes", "fp32", "--json", str(out)]))
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["schema"] == parity.SCHEMA
    (row,) = report["rows"]
    assert row["variant"] == variant and row["scope"] == "3a" and row["dtype"] == "fp32"
    assert row["passed"] and row["all_finite"] and row["rel_error"] <= tolerances.TOLERANCES["float32"]
    assert row["path"] == ("Triton kernels (CUDA)" if CUDA else "Triton interpreter (CPU)")
    ((block, ran),) = row["tactics"].items()
    assert block == "3a" and ran["tactic"] == "triton"  # untuned GPU or the interpreter: the kernels
    text = parity.format_markdown(report)
    assert "| triton (3a) |" in text and f"- triton: {ran['reason']}" in text


def test_parity_forced_tactic(tmp_path):
    # --tactic runs every fused block as that tactic, and the row says so
    out = tmp_path / "parity.json"
    rc = parity.run(_args(parity, ["--variants", "torchvision", "--blocks", "3a", "--no-net", "--dtypes", "fp32",
                                   "--tactic", "aten", "--json", str(out)]))
    assert rc == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["passed"] and row["tactics"]["3a"]["tactic"] == "aten"


def test_parity_failure_exit_code(monkeypatch, capsys):
    # a tolerance of 0 cannot be met: the report must say FAIL and exit 1
    monkeypatch.setitem(tolerances.TOLERANCES, "float32", 0.0)
    rc = parity.run(_args(parity, ["--variants", "torchvision", "--blocks", "3a", "--no-net",
                                                 "--dtypes", "fp32"]))
    assert rc == 1
    assert "FAIL torchvision 3a fp32" in capsys.readouterr().out


def _cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)  # as a user runs it: the commands choose the path themselves
    return subprocess.run([sys.executable, "-m", "fused_inception", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_parity_subprocess():
    proc = _cli("parity", "--variants", "paper", "--blocks", "4a", "--no-net", "--dtypes", "fp32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 0 failed" in proc.stdout
    assert ("Triton kernels (CUDA)" if CUDA else "Triton interpreter (CPU)") in proc.stdout


def test_cli_bench_subprocess():
    proc = _cli("bench", *TINY_BENCH, "--scopes", "5b", "--modes", "infer", "--methods", "eager,fused")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Speedup of each fused method" in proc.stdout
    assert "Tactics the fused blocks ran" in proc.stdout
    if not CUDA:
        assert bench_run.CPU_LABEL in proc.stdout
        assert "aten (5b): CPU, inference, nchw" in proc.stdout


def test_bench_json_is_rewritten_after_every_method(monkeypatch, tmp_path):
    """A bench cut short keeps every method it timed: the JSON is rewritten after each one."""
    snapshots = []
    monkeypatch.setattr(bench_run, "write_json",
                        lambda report, path: snapshots.append([sorted(c["results"]) for c in report["cases"]]))
    args = _args(bench, [*TINY_BENCH, "--scopes", "3a", "--modes", "infer", "--methods", "eager,fused",
                         "--json", str(tmp_path / "b.json")])
    settings = bench.resolve_settings(args)
    with bench_run.interpreter_off():
        report = bench_run.run_bench(settings, progress_enabled=False, json_path=args.json)
    assert snapshots[:2] == [[["eager"]], [["eager", "fused"]]]
    (case,) = report["cases"]
    assert case["rotated_mb"] > 0
    if not CUDA:
        assert case["warm_cache"] is None  # no L2 to judge on the CPU


def test_parity_rows_come_dtype_first_and_the_json_row_by_row(monkeypatch, tmp_path):
    """parity orders rows dtype, variant, scope (a run cut short keeps every scope of the first
    dtypes) and rewrites its JSON after every row, marked incomplete until the last."""
    def check_one(reference, fused, x64, dtype_key, device, channels_last=False, whole_network=False,
                  ref_cache=None, scope="block"):
        return {"rel_error": 0.0, "max_abs_error": 0.0, "tolerance": 1e-5, "dtype_tolerance": 1e-5,
                "criterion": "test", "all_finite": True, "passed": True, "eager_rel_error": 0.0,
                "eager_max_abs_error": 0.0, "ref_max_abs": 1.0, "fused_seconds": 0.0,
                "tactics": {scope: {"tactic": "triton", "reason": "test"}}}

    writes = []
    monkeypatch.setattr(parity, "check_one", check_one)
    monkeypatch.setattr(parity, "write_json", lambda doc, path: writes.append(doc))
    rc = parity.run(_args(parity, ["--variants", "torchvision,paper", "--blocks", "3a,4a", "--no-net",
                                                 "--dtypes", "fp16,fp32", "--jobs", "1",
                                                 "--json", str(tmp_path / "parity.json")]))
    assert rc == 0
    assert [(len(d["rows"]), d["complete"], d["planned_rows"]) for d in writes] == \
        [(n, False, 8) for n in range(1, 9)] + [(8, True, 8)]
    order = [(r["dtype"], r["variant"], r["scope"]) for r in writes[-1]["rows"]]
    assert order == [(d, v, b) for d in ("fp16", "fp32") for v in ("torchvision", "paper") for b in ("3a", "4a")]


def test_bench_merge_of_nothing_reports_the_environment_and_plots_nothing(tmp_path, monkeypatch, capsys):
    """gpu_check.sh's report before any bench step finished: a merge of no file still writes the
    markdown (environment, steps) and skips the plot instead of failing on it."""
    import types

    monkeypatch.setitem(sys.modules, "matplotlib", types.ModuleType("matplotlib"))  # passes the check
    steps, md, png = tmp_path / "steps.tsv", tmp_path / "r.md", tmp_path / "r.png"
    steps.write_text("setup\tinstall\tran\t9\t60\t0\t-\t\n")
    assert bench.run(_args(bench, ["--merge", "--steps", str(steps), "--markdown", str(md), "--plot", str(png)])) == 0
    assert not png.exists() and "no timing to plot" in capsys.readouterr().out
    text = md.read_text()
    assert "| setup | install | ran | 9 | 60 | - | - |" in text and "No bench results in this report." in text


def test_tactic_summary_groups_blocks_by_tactic_and_reason():
    from fused_inception.tools.tactic_report import NOT_RECORDED, tactic_summary

    ran = {"3a": {"tactic": "aten", "reason": "r1"}, "3b": {"tactic": "modules", "reason": "r2"},
           "4a": {"tactic": "aten", "reason": "r1"}, "4b": {"tactic": None, "reason": NOT_RECORDED}}
    assert tactic_summary(ran) == f"aten (3a,4a): r1; modules (3b): r2; unknown (4b): {NOT_RECORDED}"
    assert tactic_summary(ran, reasons=False) == "aten (3a,4a); modules (3b); unknown (4b)"
    assert tactic_summary({}) == "-"


def test_cpu_methods_are_timed_in_rotating_rounds(monkeypatch):
    """measure_interleaved: one call per method per round, the round's first method moving one
    along each round; a method that fails mid-run leaves the rounds with its error."""
    calls = []

    def fake_prepare(setup, name, compile_mode, reset_dynamo=True):
        def fn(i):
            if name == "broken" and i >= 2:
                raise RuntimeError("boom")
            calls.append(name)
        return fn, {}

    monkeypatch.setattr(bench_timing, "prepare_call", fake_prepare)
    setup = argparse.Namespace(case=argparse.Namespace(mode="train", batch=2), device="cpu")
    settings = {"compile_mode": "default", "warmup": 1, "repeat": 3, "rep_ms": 0.0}
    results = bench_timing.measure_interleaved(setup, ["eager", "fused", "broken"], settings)
    # warm-up round, then rounds starting at eager, fused, eager (broken gone after its first round)
    assert calls == ["eager", "fused", "broken", "eager", "fused", "broken", "fused", "eager", "eager", "fused"]
    assert results["broken"] == {"error": "RuntimeError: boom"}
    assert [results[name]["n"] for name in ("eager", "fused")] == [3, 3]
