"""The tactic tuner (tools/tune/tactic_rows.py): its choice under a scripted timer (on the CPU the
timings mean nothing: the Triton tactic runs in the interpreter), the float64 check that rejects a
wrong tactic however fast, the 3% margin, the budget, single-candidate rows, the tuned file it
writes read back by kernels/tuned_configs, and the library then running the recorded winner.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from fused_inception.kernels import tuned_configs
from fused_inception.kernels.tuned_configs import gpu_slug
from fused_inception.module import record_paths
from fused_inception.patching import fuse
from fused_inception.selection import use_tuned_table
from fused_inception.tactics import (ATEN, ATEN_BN, BN_TRAINING, FROZEN_BN_TRAINING, INFERENCE, MODULES, TACTICS,
                                     TRITON)
from fused_inception.models.randomize import random_block
from fused_inception.spec import googlenet_spec
from fused_inception.tools.tune import command as tune, tactic_rows as tactic_tuner
from fused_inception.tools.tune.rules import MIN_GAIN

GPU = "Test GPU 80GB"
HW = 4  # 4x4 images, batch 2: the interpreter runs the Triton tactic in seconds


class ScriptedTimer:
    """Returns the given ms in turn, one per timed candidate; remembers how often it was called."""

    def __init__(self, times):
        self.times, self.calls = list(times), 0

    def __call__(self, call):
        call()  # the call must run as the tuner would time it
        self.calls += 1
        return self.times.pop(0)


def _tune(mode=INFERENCE, times=(), allowed=TACTICS, budget_s=600.0, dtype=torch.float32, lines=None, seed=0):
    rows = tactic_tuner.tactic_rows(["3a"], [dtype], [2], [mode])
    timer = ScriptedTimer(times)
    part = tactic_tuner.tune_tactics(rows, device="cpu", gpu=GPU, capability=None, timer=timer, budget_s=budget_s,
                                     allowed=allowed, seed=seed, hw=HW,
                                     progress=(lines.append if lines is not None else lambda line: None))
    return part, timer


def test_candidates_put_the_untuned_default_first_and_skip_triton_for_float64():
    """On the CPU the untuned default is the committed measurement's (inference: aten); the tuner
    times it first. float64 and BN training have no Triton kernel."""
    assert tactic_tuner.untuned_default("cpu", None, torch.float32, 2, torch.channels_last, INFERENCE) == ATEN
    assert tactic_tuner.untuned_default("cuda", (9, 0), torch.float16, 2, torch.channels_last, INFERENCE) == TRITON
    assert tactic_tuner.untuned_default("cuda", (7, 5), torch.float16, 2, torch.channels_last, INFERENCE) == ATEN
    assert tactic_tuner.candidates(INFERENCE, torch.float64) == (ATEN, MODULES)
    assert tactic_tuner.candidates(BN_TRAINING, torch.float16) == (ATEN, ATEN_BN, MODULES)
    assert tactic_tuner.candidates(FROZEN_BN_TRAINING, torch.float16) == (TRITON, ATEN, ATEN_BN, MODULES)
    assert tactic_tuner.candidates(INFERENCE, torch.float16, allowed=(TRITON,)) == (TRITON,)
    assert tactic_tuner.candidates(INFERENCE, torch.float32) == (TRITON, ATEN, MODULES)


def test_tactic_tuner_chooses_the_fastest_and_the_library_runs_the_recorded_winner(tuned_dir, monkeypatch):
    # candidates in timing order: aten (the CPU's inference default), triton, modules
    part, timer = _tune(times=[3.0, 2.0, 1.0])
    assert timer.calls == 3 and not part["failed"] and not part["incomplete"]
    (row,) = part["rows"]
    assert row["tactic"] == MODULES and row["default"] == ATEN and row["speedup_vs_default"] == 3.0
    assert row["median_ms"] == {ATEN: 3.0, TRITON: 2.0, MODULES: 1.0} and not row["rejected"]
    (entry,) = part["tactics"]
    shape = [192, 64, 96, 128, 16, 32, 32, 3, 3]  # torchvision's 3a: its "5x5" branch is a 3x3
    assert entry == {"block": shape, "dtype": "float32", "batch": "2-16", "mode": INFERENCE, "tactic": MODULES,
                     "median_ms": row["median_ms"]}
    # the file the tune command writes (config part empty), read back by kernels/tuned_configs
    doc = tactic_tuner.with_tactics(tune.tune([], ["3a"], 2, device="cpu", gpu=GPU, timer=timer, budget_s=1),
                                    part, {"blocks": ["3a"]})
    (tuned_dir / f"{gpu_slug(GPU)}.json").write_text(json.dumps(doc))
    table = tuned_configs.tuned_table(GPU)
    assert table.tactic_for(tuple(shape), "float32", "2-16", INFERENCE) == MODULES
    assert table.tactic_for(tuple(shape), "float32", "1", INFERENCE) is None
    assert doc["tuned"]["tactics"]["rows"] == part["rows"]
    # the library: the CPU's default is aten; with the table the block runs the recorded winner
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    block = fuse(random_block(googlenet_spec("3a", "torchvision"), torch.Generator().manual_seed(1)).float())
    x = torch.randn(2, 192, HW, HW)
    with torch.no_grad(), record_paths() as calls:
        block(x)
        assert block.last_tactic[0] == ATEN
        with use_tuned_table(table):
            block(x)
        assert block.last_tactic[0] == MODULES and "tuned winner" in block.last_tactic[1]
        block(torch.randn(1, 192, HW, HW))  # batch bucket 1: no record, the default again
    assert [path for path, _ in calls] == ["aten", "modules", "aten"]


def test_tactic_tuner_keeps_the_default_unless_clearly_faster():
    # triton 1% faster than the default aten: within the margin; the file's entry then carries no
    # timings (they would name another tactic as the fastest), the row details keep them
    part, _ = _tune(times=[1.0, 0.99, 1.5])
    (row,) = part["rows"]
    assert MIN_GAIN > 0.01
    assert row["tactic"] == ATEN and row["speedup_vs_default"] == 1.0 and row["median_ms"][TRITON] == 0.99
    (entry,) = part["tactics"]
    assert entry["tactic"] == ATEN and "median_ms" not in entry


def _wrong_output(monkeypatch, tactic: str, gradient: bool = False) -> None:
    """Make ``tactic``'s output wrong by one element, or (``gradient``) its input gradient 1% off."""
    real = tactic_tuner.tactic_call

    def tactic_call(case, name):
        call = real(case, name)
        if name != tactic:
            return call

        def wrong():
            out, grad = call()
            if gradient:
                return out, grad * 1.01
            out = out.detach().clone()
            out[0, 0, 0, 0] += 1.0
            return out, grad
        return wrong

    monkeypatch.setattr(tactic_tuner, "tactic_call", tactic_call)


def test_tactic_tuner_rejects_a_wrong_tactic_however_fast(monkeypatch):
    _wrong_output(monkeypatch, MODULES)
    part, timer = _tune(times=[2.0, 1.5])  # aten, triton; the wrong modules are never timed
    (row,) = part["rows"]
    assert timer.calls == 2 and MODULES not in row["median_ms"] and row["tactic"] == TRITON
    assert row["rejected"][MODULES].startswith("output: FAIL")


def test_tactic_tuner_fails_a_row_whose_default_is_wrong(monkeypatch):
    _wrong_output(monkeypatch, ATEN)
    lines = []
    part, timer = _tune(times=[], lines=lines)
    assert timer.calls == 0 and not part["tactics"] and not part["rows"]
    (failed,) = part["failed"]
    assert "default tactic aten fails" in failed["error"] and "FAILED" in lines[0]


def test_tactic_tuner_rejects_a_tactic_that_runs_another(monkeypatch):
    """A tactic is only timed if the block reports that it ran it (hooks, say, force the modules)."""
    real = tactic_tuner.tactic_call

    def tactic_call(case, name):
        call = real(case, name)
        if name != TRITON:
            return call

        def other():
            result = call()
            case.fused.last_tactic = (MODULES, "hooks a fused launch would skip")
            return result
        return other

    monkeypatch.setattr(tactic_tuner, "tactic_call", tactic_call)
    part, _ = _tune(times=[2.0], allowed=(ATEN, TRITON))
    (row,) = part["rows"]
    assert row["rejected"][TRITON] == "asked for triton, the block ran modules (hooks a fused launch would skip)"
    assert row["tactic"] == ATEN and set(row["median_ms"]) == {ATEN}


def test_tactic_tuner_checks_gradients_in_training_modes(monkeypatch):
    """Frozen-BN and BN training: forward + backward, output and input gradient checked."""
    # the CPU's untuned default in both training modes is aten-bn (tactics.CPU_FASTEST), timed first
    part, _ = _tune(mode=FROZEN_BN_TRAINING, times=[2.0, 1.0], allowed=(ATEN_BN, MODULES))
    (row,) = part["rows"]
    assert (row["default"], row["tactic"]) == (ATEN_BN, MODULES) and not row["rejected"]
    part, _ = _tune(mode=BN_TRAINING, times=[1.0, 2.0, 3.0])
    (row,) = part["rows"]
    assert (row["default"], row["tactic"]) == (ATEN_BN, ATEN_BN)
    assert row["median_ms"] == {ATEN_BN: 1.0, ATEN: 2.0, MODULES: 3.0}
    assert part["tactics"][0]["mode"] == BN_TRAINING


def test_tactic_check_sees_a_wrong_gradient(monkeypatch):
    case = tactic_tuner.make_tactic_case("3a", torch.float32, 2, FROZEN_BN_TRAINING, "cpu", torch.channels_last,
                                         seed=3, hw=HW)
    assert tactic_tuner.check_tactic(case, ATEN) is None
    _wrong_output(monkeypatch, ATEN, gradient=True)
    assert tactic_tuner.check_tactic(case, ATEN).startswith("input gradient: FAIL")


def test_tactic_tuner_skips_single_candidate_rows_and_stops_at_the_budget():
    lines = []
    part, timer = _tune(mode=BN_TRAINING, allowed=(TRITON, ATEN), lines=lines)
    assert timer.calls == 0 and part == {"tactics": [], "rows": [], "incomplete": [], "failed": []}
    assert "nothing to tune" in lines[0]
    part, timer = _tune(budget_s=0)
    assert timer.calls == 0 and not part["tactics"]
    assert part["incomplete"] == ["tactic 3a float32 batch 2 inference"]


def test_tactic_rows_order_and_checks():
    rows = tactic_tuner.tactic_rows(["3a", "4d"], [torch.float16], [1, 8], [INFERENCE])
    assert [(r.block, r.batch) for r in rows] == [("3a", 1), ("4d", 1), ("3a", 8), ("4d", 8)]
    with pytest.raises(ValueError, match="one batch per bucket"):
        tactic_tuner.tactic_rows(["3a"], [torch.float16], [4, 8], [INFERENCE])
    with pytest.raises(ValueError, match="unknown mode"):
        tactic_tuner.tactic_rows(["3a"], [torch.float16], [1], ["eval"])


def _args(**changes) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tune.add_arguments(parser)
    args = parser.parse_args([])
    for name, value in changes.items():
        setattr(args, name, value)
    return args


def test_tune_command_plans_the_tactic_rows():
    rows = tune.tactic_plan(_args())
    assert len(rows) == 9 * 3 * 4 * 3  # blocks x dtypes x batch buckets x modes
    assert tune.tactic_plan(_args(tactic_budget_s=0)) == []
    for bad, message in ((dict(tactics="cudnn"), "unknown tactic"),
                         (dict(tactic_dtypes="fp8"), "unknown tactic dtype"),
                         (dict(tactic_batches="1,x"), "integers"),
                         (dict(tactic_blocks="9z"), "unknown GoogLeNet block")):
        with pytest.raises(ValueError, match=message):
            tune.tactic_plan(_args(**bad))
