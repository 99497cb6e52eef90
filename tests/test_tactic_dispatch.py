"""FusedInception runs the tactic the policy selects (fused_inception.selection): each tactic in each
mode against float64 (outputs, input and parameter gradients, BN buffers), the CPU defaults, a
recorded GPU winner (a tuned table object, no CUDA), the once-per-process untuned-GPU warning, the
tuned file's tactic records and fuse_with_report's tactic lines.

The CPU without the Triton interpreter is reached by setting TRITON_INTERPRET=0 (monkeypatch):
there ``triton`` is the fused op on its PyTorch path, and ``aten`` and ``modules`` are what a CPU
user runs. Tolerances are the library's (tolerances.TOLERANCES), gradients held to the plain fp32
block's own error as in tests/test_modes.py.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import fused_inception as fi
from block_helpers import SMALL, WIDE, assert_step_matches, random_input
from fused_inception.kernels import tuned_configs
from fused_inception.kernels.tuned_configs import TunedFileError, TunedTable, parse_tuned, tactic_entry
from fused_inception.models import googlenet, randomize_
from fused_inception.models.randomize import random_block
from fused_inception.module import record_paths
from fused_inception.selection import (UntunedGPUWarning, block_shape, choose_for_device, force_tactic,
                                       tactic_lines, use_tuned_table)
from fused_inception.tactics import (ATEN, ATEN_BN, BN_TRAINING, CPU_FASTEST, FROZEN_BN_TRAINING, INFERENCE,
                                     MODULES, TRITON, TacticKey, batch_bucket)
from fused_inception.tolerances import assert_close, assert_close_to_baseline

SHAPE = (3, 8, 4, 5)
# the record_paths path each tactic takes outside BN training
PATH_OF = {TRITON: "fused", ATEN: "aten", ATEN_BN: "aten_bn", MODULES: "modules"}
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@pytest.fixture
def cpu(monkeypatch):
    """The CPU as a user has it: the Triton interpreter off."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")


def _bns(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def _block(gen: torch.Generator, mode: str, spec=WIDE) -> nn.Module:
    """A float32 block in ``mode``: eval (inference), training with every BN eval (frozen-BN
    training), or training (BN training)."""
    block = random_block(spec, gen).float().train(mode != INFERENCE)
    if mode == FROZEN_BN_TRAINING:
        for bn in _bns(block):
            bn.eval()
    return block


def _table(records: dict[TacticKey, str], gpu: str = "Fake GPU") -> TunedTable:
    """A tuned table with tactic records only (what a GPU's tuned file would give)."""
    return TunedTable(gpu=gpu, path=Path(f"{tuned_configs.gpu_slug(gpu)}.json"), choices={},
                      tactics={key.record_key: tactic for key, tactic in records.items()})


# --- each tactic, each mode, against float64 -------------------------------------------------

@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("tactic", [TRITON, ATEN, ATEN_BN, MODULES])
def test_inference_under_each_tactic(tactic, fmt, gen, cpu):
    block = _block(gen, INFERENCE)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    x64 = random_input(SHAPE, gen)
    x = x64.float().contiguous(memory_format=FORMATS[fmt])
    with torch.no_grad(), record_paths() as calls, force_tactic(tactic):
        out = fused(x)
    assert calls == [(PATH_OF[tactic], torch.float32)]
    assert fused.last_tactic == (tactic, "forced (selection.force_tactic)")
    assert out.is_contiguous(memory_format=FORMATS[fmt])
    assert_close(out, copy.deepcopy(block).double()(x64), "float32", f"{tactic} {fmt}")


@pytest.mark.parametrize("mode", [INFERENCE, FROZEN_BN_TRAINING])
def test_aten_bn_with_bn_on_some_convs_runs_aten(mode, gen, cpu):
    """aten-bn needs BN on all six convs or on none; chosen for a block with BN on five (every BN
    in eval here: batch statistics with BN on some convs run the modules first), the block folds
    its BNs as aten does instead of falling back to its modules."""
    block = _block(gen, mode)
    block.branch3[0].bn = None
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    x64 = random_input(SHAPE, gen)
    x = x64.float().requires_grad_(mode != INFERENCE)
    with torch.set_grad_enabled(mode != INFERENCE), record_paths() as calls, force_tactic(ATEN_BN):
        out = fused(x)
    assert calls == [("aten", torch.float32)]
    assert fused.last_tactic[0] == ATEN and "aten-bn needs BatchNorm on all six convs" in fused.last_tactic[1]
    assert_close(out, copy.deepcopy(block).double()(x64), "float32", mode)


@pytest.mark.parametrize("tactic", [TRITON, ATEN, ATEN_BN, MODULES])
@pytest.mark.parametrize("mode", [FROZEN_BN_TRAINING, BN_TRAINING])
def test_training_steps_under_each_tactic(mode, tactic, gen, cpu):
    """Two forward/backward steps: outputs and buffers to the fp32 tolerance, input and parameter
    gradients to the plain fp32 block's own error; frozen BN buffers unchanged, training BN buffers
    (running statistics, num_batches_tracked) as nn.BatchNorm2d moves them."""
    block = _block(gen, mode)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    ref, plain = copy.deepcopy(block).double(), copy.deepcopy(block)
    before = {name: b.clone() for name, b in fused.named_buffers()}
    # triton and aten have no BN-training form of their own: both run the BN-training op
    expected = "bn_train" if mode == BN_TRAINING and tactic in (TRITON, ATEN) else PATH_OF[tactic]
    for step in range(2):
        x = random_input(SHAPE, gen)
        grad_out = torch.randn((SHAPE[0], WIDE.out_channels, *SHAPE[2:]), generator=gen, dtype=torch.float64)
        inputs = {"fused": x.float().requires_grad_(), "plain": x.float().requires_grad_(),
                  "ref": x.clone().requires_grad_()}
        outs = {}
        with record_paths() as calls, force_tactic(tactic):
            outs["fused"] = fused(inputs["fused"])
        assert calls == [(expected, torch.float32)]
        outs["plain"], outs["ref"] = plain(inputs["plain"]), ref(inputs["ref"])
        for name, out in outs.items():
            out.backward(grad_out.to(out.dtype))
        assert_step_matches(fused, ref, inputs, outs, f"step {step}")
    ref_params, plain_params = dict(ref.named_parameters()), dict(plain.named_parameters())
    for name, p in fused.named_parameters():
        assert_close_to_baseline(p.grad, ref_params[name].grad, plain_params[name].grad, "float32", f"grad {name}")
    moved = {name for name, b in fused.named_buffers() if not torch.equal(b, before[name])}
    assert (moved != set()) == (mode == BN_TRAINING), moved


def test_aten_tactic_float64_gradcheck(gen, cpu):
    """float64 through the module's aten tactic (BN folded in the call): gradcheck of the input."""
    fused = fi.FusedInception.from_module(_block(gen, FROZEN_BN_TRAINING, SMALL).double())
    x = random_input((1, 8, 4, 5), gen).requires_grad_()
    with force_tactic(ATEN), record_paths() as calls:
        assert torch.autograd.gradcheck(fused, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)
    assert {path for path, _ in calls} == {"aten"}


# --- the CPU defaults ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("mode", [INFERENCE, FROZEN_BN_TRAINING, BN_TRAINING])
def test_cpu_runs_its_measured_default(mode, fmt, gen, cpu):
    fused = fi.FusedInception.from_module(_block(gen, mode))
    x = random_input(SHAPE, gen).float().contiguous(memory_format=FORMATS[fmt]).requires_grad_(mode != INFERENCE)
    with torch.set_grad_enabled(mode != INFERENCE), record_paths() as calls:
        fused(x)
    tactic = CPU_FASTEST[(mode, fmt)]
    assert fused.last_tactic[0] == tactic
    assert "committed CPU measurement" in fused.last_tactic[1]
    expected = "bn_train" if mode == BN_TRAINING and tactic in (TRITON, ATEN) else PATH_OF[tactic]
    assert calls == [(expected, torch.float32)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the interpreter is off (tests/conftest.py)")
def test_interpreter_runs_the_kernels(gen):
    """Under TRITON_INTERPRET=1 (conftest) the CPU runs the fused op, whatever the table says."""
    fused = fi.FusedInception.from_module(_block(gen, INFERENCE, SMALL))
    key = TacticKey.of("Fake GPU", block_shape(fused.match.conv_units(fused)), torch.float32, 2, INFERENCE)
    with torch.no_grad(), record_paths() as calls, use_tuned_table(_table({key: MODULES})):
        fused(random_input((2, 8, 4, 5), gen).float())
    assert calls == [("fused", torch.float32)]
    assert "TRITON_INTERPRET=1" in fused.last_tactic[1]


def test_aten_weights_are_cached_and_refolded_after_a_step(gen, cpu):
    block = _block(gen, INFERENCE)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    x64 = random_input(SHAPE, gen)
    with torch.no_grad(), force_tactic(ATEN):
        fused(x64.float())
        assert fused.has_cached_weights
        weights = fused.aten_weights(torch.float32, x64.device)
        fused(x64.float())
        assert fused.aten_weights(torch.float32, x64.device) is weights
        for module in (block, fused):
            module.get_submodule(fused.match.units["conv3"].conv).weight.mul_(-0.5)  # in place, as a step
        out = fused(x64.float())
    assert fused.aten_weights(torch.float32, x64.device) is not weights
    assert_close(out, copy.deepcopy(block).double()(x64), "float32", "after the weight change")


def test_whole_googlenet_default_cpu_inference(gen, cpu):
    """fuse(model) on the CPU: every block on the default inference tactic, logits against float64
    at the unfused fp32 network's own error."""
    model = randomize_(googlenet(variant="torchvision", aux_logits=False, num_classes=10, init_weights=False),
                       gen).eval()
    fused = fi.fuse(model)
    x = random_input((1, 3, 32, 32), gen)
    with torch.no_grad(), record_paths() as calls:
        out = fused(x.float())
        assert_close_to_baseline(out, copy.deepcopy(model).double()(x), model(x.float()), "float32", "logits")
    assert calls == [(PATH_OF[CPU_FASTEST[(INFERENCE, "nchw")]], torch.float32)] * 9


def test_torch_compile_fullgraph_on_the_aten_tactic(gen, cpu):
    block = _block(gen, INFERENCE, SMALL)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    x64 = random_input((2, 8, 4, 5), gen)
    compiled = torch.compile(fused, fullgraph=True)
    with torch.no_grad(), force_tactic(ATEN), record_paths() as calls:
        out = compiled(x64.float())
    assert ("aten", torch.float32) in calls
    assert_close(out, block.double()(x64), "float32", "compiled aten")


# --- a GPU record, faked by a table ---------------------------------------------------------

def test_recorded_winner_runs_on_the_module(gen, cpu):
    """A table's winner for the call's key beats the CPU default; another batch bucket does not."""
    fused = fi.FusedInception.from_module(_block(gen, INFERENCE))
    shape = block_shape(fused.match.conv_units(fused))
    assert shape == (8, 6, 6, 7, 6, 7, 6, 3, 5)
    table = _table({TacticKey.of("Fake GPU", shape, torch.float32, SHAPE[0], INFERENCE): MODULES})
    with torch.no_grad(), use_tuned_table(table), record_paths() as calls:
        fused(random_input(SHAPE, gen).float())
        assert fused.last_tactic == (MODULES, f"tuned winner for float32, batch {batch_bucket(SHAPE[0])}, inference")
        fused(random_input((1, *SHAPE[1:]), gen).float())  # batch bucket "1": no record, the CPU default
        assert "committed CPU measurement" in fused.last_tactic[1]
    assert [path for path, _ in calls] == ["modules", PATH_OF[CPU_FASTEST[(INFERENCE, "nchw")]]]


@pytest.mark.parametrize("capability, untuned", [((9, 0), TRITON), ((7, 5), ATEN)])
def test_gpu_choice_with_and_without_a_record(capability, untuned):
    shape = (192, 64, 96, 128, 16, 32, 32, 3, 5)
    args = ("cuda", capability, "Fake GPU", torch.float16, 8, torch.channels_last, INFERENCE, shape, False)
    table = _table({TacticKey.of("Fake GPU", shape, torch.float16, 8, INFERENCE): ATEN if untuned == TRITON
                    else TRITON})
    with use_tuned_table(table):
        recorded = choose_for_device(*args)
    assert recorded.tactic != untuned and recorded.reason.startswith("tuned winner")
    with use_tuned_table(_table({})), warnings.catch_warnings():
        warnings.simplefilter("ignore", UntunedGPUWarning)  # once per process: its own test below
        assert choose_for_device(*args).tactic == untuned


def test_tf32_is_part_of_the_memoised_facts():
    """The same call's facts with and without TF32 allowed: the kernels, then aten (a memo keyed
    without the TF32 flag would hand the second call the first one's choice)."""
    shape = (192, 64, 96, 128, 16, 32, 32, 3, 5)
    args = ("cuda", (9, 0), "Fake GPU", torch.float32, 8, torch.channels_last, INFERENCE, shape, False)
    with use_tuned_table(_table({})), warnings.catch_warnings():
        warnings.simplefilter("ignore", UntunedGPUWarning)
        assert choose_for_device(*args, tf32=False).tactic == TRITON
        assert choose_for_device(*args, tf32=True).tactic == ATEN
        assert choose_for_device(*args, tf32=False).tactic == TRITON


def test_float32_records_are_kept_apart_by_the_tf32_setting():
    """A float32 winner recorded with TF32 off (dtype "float32") does not apply with TF32 on (dtype
    "tf32"), and the other way round: each was checked and timed in its own setting."""
    shape = (192, 64, 96, 128, 16, 32, 32, 3, 5)
    assert TacticKey.of("Fake GPU", shape, torch.float32, 8, INFERENCE, tf32=True).dtype == "tf32"
    assert TacticKey.of("Fake GPU", shape, torch.float16, 8, INFERENCE, tf32=True).dtype == "float16"
    ieee_key = TacticKey.of("Fake GPU", shape, torch.float32, 8, INFERENCE)
    args = ("cuda", (9, 0), "Fake GPU", torch.float32, 8, torch.channels_last, INFERENCE, shape, False)
    with use_tuned_table(_table({ieee_key: MODULES})), warnings.catch_warnings():
        warnings.simplefilter("ignore", UntunedGPUWarning)
        assert choose_for_device(*args, tf32=False).tactic == MODULES
        assert choose_for_device(*args, tf32=True).tactic == ATEN  # no "tf32" record: the untuned rule
    tf32_key = TacticKey.of("Fake GPU", shape, torch.float32, 8, INFERENCE, tf32=True)
    with use_tuned_table(_table({tf32_key: MODULES})), warnings.catch_warnings():
        warnings.simplefilter("ignore", UntunedGPUWarning)
        assert choose_for_device(*args, tf32=True).tactic == MODULES
        assert choose_for_device(*args, tf32=False).tactic == TRITON  # no "float32" record: untuned sm_90


def test_untuned_gpu_warns_once_per_process():
    """In a fresh process: two untuned GPU calls (different keys) give one UntunedGPUWarning; a
    recorded winner gives none."""
    script = """
import warnings, torch
from pathlib import Path
from fused_inception.kernels.tuned_configs import TunedTable
from fused_inception.selection import UntunedGPUWarning, choose_for_device, use_tuned_table
from fused_inception.tactics import TacticKey
shape = (192, 64, 96, 128, 16, 32, 32, 3, 5)
key = TacticKey.of("Fake GPU", shape, torch.float16, 8, "inference")
table = TunedTable("Fake GPU", Path("fake-gpu.json"), {}, tactics={key.record_key: "aten"})
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    with use_tuned_table(table):
        choose_for_device("cuda", (9, 0), "Fake GPU", torch.float16, 8, torch.channels_last, "inference", shape, False)
    first = len(seen)
    for batch in (8, 1, 100):
        choose_for_device("cuda", (9, 0), "Fake GPU", torch.float16, batch, torch.channels_last, "inference",
                          shape, False)
print(first, sum(issubclass(w.category, UntunedGPUWarning) for w in seen), str(seen[-1].message))
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["FUSED_INCEPTION_TUNED"] = "0"  # no shipped file can record the fake GPU
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    first, count, message = done.stdout.strip().split(" ", 2)
    assert (first, count) == ("0", "1"), done.stdout
    assert "Fake GPU" in message and "tune" in message


# --- tactic records in a tuned file ---------------------------------------------------------

SHAPE_3A = [192, 64, 96, 128, 16, 32, 32, 3, 5]


def _doc(*tactics: dict) -> dict:
    return {"schema": 1, "gpu": "Fake GPU", "choices": [], "tactics": list(tactics)}


def test_tuned_file_tactic_records_parse_and_look_up(tmp_path, monkeypatch):
    entries = [tactic_entry(SHAPE_3A, "float16", "2-16", "inference", "aten",
                            {"triton": 0.41, "aten": 0.33, "modules": 0.52}),
               tactic_entry(SHAPE_3A, "float16", "2-16", "bn-training", "modules")]
    path = tmp_path / "fake-gpu.json"
    path.write_text(json.dumps(_doc(*entries)))
    monkeypatch.setenv(tuned_configs.ENV_DIR, str(tmp_path))
    tuned_configs.clear_cache()
    try:
        key = TacticKey.of("Fake GPU", tuple(SHAPE_3A), torch.float16, 8, INFERENCE)
        assert tuned_configs.tuned_tactic("Fake GPU", *key.record_key) == ATEN
        assert tuned_configs.tuned_tactic("Fake GPU", tuple(SHAPE_3A), "float16", "2-16", BN_TRAINING) == MODULES
        assert tuned_configs.tuned_tactic("Fake GPU", tuple(SHAPE_3A), "float32", "2-16", INFERENCE) is None
        assert tuned_configs.tuned_tactic("Other GPU", *key.record_key) is None
    finally:
        tuned_configs.clear_cache()


@pytest.mark.parametrize("entry, why", [
    ({"block": SHAPE_3A[:8], "dtype": "float16", "batch": "1", "mode": "inference", "tactic": "aten"},
     "block must be 9 positive ints"),
    ({"block": SHAPE_3A, "dtype": "float8", "batch": "1", "mode": "inference", "tactic": "aten"}, "dtype 'float8'"),
    ({"block": SHAPE_3A, "dtype": "float16", "batch": "3", "mode": "inference", "tactic": "aten"}, "batch '3'"),
    ({"block": SHAPE_3A, "dtype": "float16", "batch": "1", "mode": "eval", "tactic": "aten"}, "mode 'eval'"),
    ({"block": SHAPE_3A, "dtype": "float16", "batch": "1", "mode": "inference", "tactic": "cudnn"},
     "tactic 'cudnn'"),
    ({"block": SHAPE_3A, "dtype": "float16", "batch": "1", "mode": "bn-training", "tactic": "triton"},
     "cannot run bn-training"),
    ({"block": SHAPE_3A, "dtype": "float16", "batch": "1", "mode": "inference", "tactic": "aten",
      "median_ms": {"aten": 0.5, "triton": 0.4}}, "not the fastest"),
    ({"block": SHAPE_3A, "dtype": "float16", "batch": "1", "mode": "inference"}, r"lacks \['tactic'\]"),
])
def test_bad_tactic_records_are_refused(entry, why):
    with pytest.raises(TunedFileError, match=f"fake-gpu.json: tactic 0: .*{why}"):
        parse_tuned(_doc(entry), Path("fake-gpu.json"))
    if "tactic" in entry:  # the writer's side refuses the same entries
        with pytest.raises(ValueError, match=why):
            tactic_entry(**entry)


def test_a_second_record_for_one_key_is_refused():
    entry = tactic_entry(SHAPE_3A, "float16", "1", "inference", "aten")
    with pytest.raises(TunedFileError, match="tactic 1: a second winner"):
        parse_tuned(_doc(entry, dict(entry, tactic="triton")), Path("fake-gpu.json"))


def test_record_vocabulary_is_the_policy_vocabulary():
    """tactics.py takes its names from the tuned-file vocabulary: every key the policy can form
    is one a file can record."""
    for batch in (1, 2, 16, 17, 64, 65, 1000):
        for mode in (INFERENCE, FROZEN_BN_TRAINING, BN_TRAINING):
            key = TacticKey.of("Fake GPU", tuple(SHAPE_3A), torch.bfloat16, batch, mode)
            entry = tactic_entry(key.block, key.dtype, key.batch, key.mode, MODULES)
            table = parse_tuned(_doc(entry), Path("fake-gpu.json"))
            assert table.tactic_for(*key.record_key) == MODULES


# --- fuse_with_report ------------------------------------------------------------------------

def test_fuse_report_says_which_tactic_each_block_runs(gen):
    model = randomize_(googlenet(variant="torchvision", aux_logits=False, num_classes=10, init_weights=False), gen)
    _, report = fi.fuse_with_report(model)
    text = str(report)
    cpu = (f"tactics on the CPU: inference {CPU_FASTEST[(INFERENCE, 'nchw')]}, frozen-bn-training "
           f"{CPU_FASTEST[(FROZEN_BN_TRAINING, 'nchw')]}, bn-training {CPU_FASTEST[(BN_TRAINING, 'nchw')]}")
    assert cpu in text and "committed CPU measurement" in text
    assert "untuned: aten-bn in training; in inference triton on sm_80 and newer" in text
    if not torch.cuda.is_available():
        assert len(report.tactics) == 2  # no GPU to name: the two device-class lines

    fused = fi.fuse(model)
    shape = block_shape(fused.inception3a.match.conv_units(fused.inception3a))
    assert shape == (192, 64, 96, 128, 16, 32, 32, 3, 3)  # torchvision's "5x5" branch is 3x3
    key = TacticKey.of("Fake GPU", shape, torch.float16, 8, INFERENCE)
    with use_tuned_table(_table({key: ATEN})):
        _, report = fi.fuse_with_report(model)
    lines = {line.split(":")[0]: line for line in report.tactics[2:]}
    assert len(lines) == 9
    assert lines["tactics on Fake GPU for inception3a"].endswith("tuned (fake-gpu.json): float16 batch 2-16 "
                                                                  "inference -> aten")
    assert lines["tactics on Fake GPU for inception4a"].endswith("no record for its shape, so the untuned rule")


def test_tactic_lines_without_a_tuned_file():
    lines = tactic_lines({"b": tuple(SHAPE_3A)}, "Fake GPU", None)
    assert lines[-1] == "tactics on Fake GPU: no tuned file, so the untuned rule for every block"
