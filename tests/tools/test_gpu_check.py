"""benchmarks/gpu_check.sh without a GPU: the command documented in benchmarks/NOTES.md (section
"GPU check") run as a CPU dry run with a budget so small that steps are cut or skipped, and the
pieces of its report (the step-status table, what each step left behind, the warm-cache label).

The dry run (GPU_CHECK_ALLOW_CPU=1) runs the same steps, step machinery and report merges as on a
GPU, at tiny sizes and with short limits; its timings are PyTorch-on-CPU figures and mean nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from fused_inception.tools.bench.cases import warm_cache
from fused_inception.tools.environment import environment, source_hash
from fused_inception.tools.bench.steps import format_steps, read_steps, status_text, summarize_output

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## GPU check (benchmarks/gpu_check.sh)"
STEP_NAMES = ["setup", "parity", "headline", "blocks", "train", "compile", "tune", "tests"]
DRY_BUDGET_S = 110  # small: the later steps cannot all fit (measured here: 80-100 s in all)


def documented_command() -> tuple[str, int]:
    """The device command and its timeout_s, as benchmarks/NOTES.md's GPU-check section gives them."""
    notes = (ROOT / "benchmarks" / "NOTES.md").read_text()
    assert SECTION in notes, f"benchmarks/NOTES.md has no section {SECTION!r}"
    section = notes.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one command line, got {lines}"
    timeout = re.search(r"`timeout_s` = (\d+)", section)
    assert timeout, "the section must give the device tool's `timeout_s` = N"
    return lines[0], int(timeout.group(1))


def script_default_budget() -> int:
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    (budget,) = re.findall(r"^BUDGET=\$\{GPU_CHECK_BUDGET_S:-(\d+)\}$", script, flags=re.M)
    return int(budget)


def test_documented_timeout_covers_the_budget():
    command, timeout_s = documented_command()
    budget = script_default_budget()
    # the script ends by its budget; timeout_s leaves the device tool's start of bash and the
    # log's last flush, and stays within the tool's 600 s per command
    assert budget + 20 <= timeout_s <= 600, (budget, timeout_s)
    assert "benchmarks/gpu_check.sh" in command and "GPU_CHECK_BUDGET_S" not in command
    section = (ROOT / "benchmarks" / "NOTES.md").read_text().split(SECTION, 1)[1]
    assert f"by default\n{budget} s" in section or f"by default {budget} s" in section


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The documented command run as a CPU dry run with a small budget: (rc, seconds, output dir)."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the documented command would run the real check")
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils' timeout")
    command, _ = documented_command()
    out = tmp_path_factory.mktemp("gpu_check_out")
    work = tmp_path_factory.mktemp("gpu_check_tmp")  # the script's raw-data directory goes here
    env = dict(os.environ, OUT=str(out), TMPDIR=str(work), GPU_CHECK_ALLOW_CPU="1",
               GPU_CHECK_BUDGET_S=str(DRY_BUDGET_S),
               # installed already; a reinstall here would rewrite the environment other tests use
               GPU_CHECK_SKIP_INSTALL="1", PYTHON=sys.executable)
    env.pop("TRITON_INTERPRET", None)  # as on the device: the script and its commands choose
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=DRY_BUDGET_S + 60)
    assert len(list(work.glob("fi_gpu_check.*"))) == 1  # kept, not deleted
    return proc, time.monotonic() - t0, out


def _one(out: Path, pattern: str) -> Path:
    (path,) = out.glob(pattern)
    return path


def test_dry_run_ends_within_its_budget_and_keeps_at_most_8_files(dry_run):
    proc, seconds, out = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # bash and python start-up before the script reads the clock: a second or two
    assert seconds <= DRY_BUDGET_S + 3, seconds
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files
    for pattern in ("*[0-9].md", "*[0-9].json", "*[0-9].log", "*-raw.tar", "*-parity.json"):
        _one(out, pattern)
    assert not list(out.glob("*.tmp"))


def test_dry_run_status_table_says_what_ran_and_what_was_cut(dry_run):
    _, _, out = dry_run
    report = json.loads(_one(out, "*[0-9].json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == STEP_NAMES
    assert steps["setup"]["status"] == "ran" and steps["parity"]["status"] == "ran"
    assert steps["tune"]["status"] == "skipped" and "needs a GPU" in steps["tune"]["note"]
    # the budget is too small for every step: some are cut at their limit or never started
    unfinished = [s for s in steps.values() if s["status"] in ("cut", "skipped") and s["step"] != "tune"]
    assert unfinished, steps
    markdown = _one(out, "*[0-9].md").read_text()
    table = markdown.split("## Steps", 1)[1].split("\n\n", 2)[1]
    for s in unfinished:
        (row,) = [line for line in table.splitlines() if line.startswith(f"| {s['step']} |")]
        if s["status"] == "cut":
            assert f"| cut at {s['seconds']} s |" in row and s["rc"] in (124, 137)
            assert s["seconds"] <= s["limit_s"]
        else:
            assert "| skipped |" in row and "not started" in row
    for s in steps.values():  # a step that started never ran past its limit
        if s["seconds"] is not None:
            assert s["seconds"] <= s["limit_s"], s


def test_dry_run_merged_every_finished_step(dry_run):
    _, _, out = dry_run
    report = json.loads(_one(out, "*[0-9].json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    markdown = _one(out, "*[0-9].md").read_text()
    # parity: its rows, merged into the report's markdown
    parity = json.loads(_one(out, "*-parity.json").read_text())
    assert parity["complete"] and len(parity["rows"]) == parity["planned_rows"] == 1
    assert parity["rows"][0]["passed"] and "## Parity" in markdown
    assert steps["parity"]["outcome"] == "1 of 1 rows: 1 passed, 0 failed, 0 skipped"
    # every bench step that left measurements (cut or not) has them in the merged report
    scopes = {"headline": {"net", "stem"}, "blocks": {"3a", "5b"}, "train": {"net"}, "compile": {"net", "stem"}}
    modes = {"headline": {"infer"}, "blocks": {"infer"}, "train": {"finetune", "train"}, "compile": {"infer"}}
    timed = {(c["scope"], c["mode"], m) for c in report["cases"] for m, r in c["results"].items()
             if "median_ms" in r}
    raw = tarfile.open(_one(out, "*-raw.tar"))
    raw_names = {Path(n).name for n in raw.getnames()}
    assert "steps.tsv" in raw_names
    finished = 0
    for name in ("headline", "blocks", "train", "compile"):
        step = steps[name]
        if step["status"] == "skipped" or (step["status"] == "cut" and step["outcome"] == "no output written"):
            # never started, or cut before its first measurement (a cold torch.compile can take
            # the whole limit): the table says so, and there is nothing to merge
            assert step["outcome"] == "no output written" and f"bench-{name}.json" not in raw_names
            continue
        assert f"bench-{name}.json" in raw_names  # the step's own JSON, kept
        own = json.load(raw.extractfile(f"./bench-{name}.json"))
        mine = {(c["scope"], c["mode"], m) for c in own["cases"] for m, r in c["results"].items()
                if "median_ms" in r}
        assert mine <= timed, (name, mine - timed)
        assert {s for s, _, _ in mine} <= scopes[name] and {m for _, m, _ in mine} <= modes[name]
        if name == "headline" and step["status"] == "ran":  # the stem alone, after the network
            (stem,) = [c for c in own["cases"] if c["scope"] == "stem"]
            assert set(stem["results"]) == {"eager", "eager-cl", "fused", "fused-cl"}
            assert ("stem", "infer", "fused-cl") in mine and stem["results"]["fused-cl"]["fused_stem_units"] == 3
        finished += bool(mine)
    # the budget leaves time for the first bench step at least
    assert steps["headline"]["status"] != "skipped" and finished >= 1, steps
    # provenance in the report
    env = report["environment"]
    assert re.fullmatch(r"[0-9a-f]{16}", env["source_hash"]) and env["git_commit"]
    assert f"- **source hash**: {env['source_hash']}" in markdown
    for fact in ("**git commit**", "**source hash**", "**driver**", "**CUDA**", "**cuDNN**", "**torch**",
                 "**triton**"):
        assert fact in markdown


def _write_steps(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "steps.tsv"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_step_table_statuses(tmp_path):
    bench = {"schema": "fused_inception.bench/1", "cases": [{"results": {
        "eager": {"median_ms": 1.0}, "fused": {"skipped": "time budget of 5 s spent"},
        "fused-cl": {"error": "RuntimeError: boom"}}}]}
    (tmp_path / "bench-x.json").write_text(json.dumps(bench))
    (tmp_path / "tests.txt").write_text("tests/test_a.py::test_one PASSED  [ 50%]\n"
                                        "tests/test_a.py::test_two FAILED  [100%]\n")
    path = _write_steps(tmp_path, [
        "setup\tinstall\tran\t9\t60\t0\t-\t",
        "blocks\tblocks\tcut\t42\t45\t124\tbench-x.json\t",
        "parity\tparity\tran\t80\t110\t1\tmissing.json\texit code 1: a row failed",
        "compile\tcompile\tfailed\t3\t100\t2\t-\t",
        "tests\tpytest\tskipped\t-\t600\t-\ttests.txt\tnot started: 12 s left, needs 30 s",
    ])
    steps = read_steps(path)
    assert [status_text(s) for s in steps] == ["ran", "cut at 42 s", "ran (rc 1)", "failed with rc 2", "skipped"]
    assert steps[1]["outcome"] == "1 timed, 1 skipped, 1 failed (of 3 measurements)"
    assert steps[2]["outcome"] == "no output written"
    assert steps[4]["outcome"] == "tests: 1 passed, 1 failed"
    table = format_steps(steps)
    assert "| blocks | blocks | cut at 42 s | 42 | 45 | 1 timed, 1 skipped, 1 failed (of 3 measurements) | - |" in table
    assert "| tests | pytest | skipped | - | 600 |" in table
    with pytest.raises(ValueError, match="8 tab-separated fields"):
        read_steps(_write_steps(tmp_path, ["setup\tran\t9"]))
    with pytest.raises(ValueError, match="status must be one of"):
        read_steps(_write_steps(tmp_path, ["setup\tinstall\tdone\t9\t60\t0\t-\t"]))


def test_summarize_parity_and_tuned_outputs(tmp_path):
    parity = tmp_path / "parity.json"
    parity.write_text(json.dumps({"schema": "fused_inception.parity/1", "planned_rows": 6, "complete": False,
                                  "rows": [{"passed": True}, {"passed": False}, {"passed": None, "skipped": "x"}]}))
    assert summarize_output(parity) == "3 of 6 rows: 1 passed, 1 failed, 1 skipped"
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"schema": 1, "choices": [{}], "tuned": {"failed": [{}], "incomplete": ["a", "b"]}}))
    assert summarize_output(tuned) == "1 rows tuned, 1 failed, 2 not reached"
    tuned.write_text(json.dumps({"schema": 1, "choices": [], "tactics": [{}, {}],
                                 "tuned": {"failed": [], "incomplete": [],
                                           "tactics": {"failed": [{}], "incomplete": ["c"]}}}))
    assert summarize_output(tuned) == ("0 rows tuned, 0 failed, 0 not reached; "
                                       "tactics: 2 recorded, 1 failed, 1 not reached")
    (tmp_path / "broken.json").write_text("{")
    assert summarize_output(tmp_path / "broken.json") == "output is not valid JSON"


def test_warm_cache_label():
    mb = 2**20
    # H200: 60 MB of L2. Blocks 5a/5b at bf16 batch 1: 512 inputs of 81.5 KB = 42 MB: warm
    assert warm_cache(512 * 832 * 7 * 7 * 2, 60 * mb) is True
    assert warm_cache(192 * mb, 60 * mb) is False
    assert warm_cache(119 * mb, 60 * mb) is True and warm_cache(120 * mb, 60 * mb) is False
    assert warm_cache(mb, None) is None  # the CPU: not judged


def test_source_hash_identifies_the_code():
    h = source_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", h) and source_hash() == h
    env = environment("cpu")
    assert env["source_hash"] == h and env["git_commit"]
