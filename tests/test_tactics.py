"""The tactic-selection policy (fused_inception.tactics): every rule, its reason, and the tuned-file key."""

from __future__ import annotations

import pytest
import torch

from fused_inception import tactics
from fused_inception.tactics import (ATEN, ATEN_BN, BN_TRAINING, FROZEN_BN_TRAINING, INFERENCE, MODES, MODULES, TRITON,
                                     TacticKey, batch_bucket, select_tactic)

NCHW, CL = torch.contiguous_format, torch.channels_last


def select(device="cuda", capability=(9, 0), dtype=torch.float16, batch=8, fmt=CL, mode=INFERENCE,
           interpreter=False, winner=None, tf32=False):
    return select_tactic(device, capability, dtype, batch, fmt, mode, interpreter, winner, tf32)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("winner", [None, MODULES])
def test_interpreter_on_cpu_runs_triton(mode, winner):
    choice = select(device="cpu", capability=None, mode=mode, interpreter=True, winner=winner)
    assert choice.tactic == TRITON
    assert "TRITON_INTERPRET=1" in choice.reason


def test_interpreter_flag_does_not_touch_a_gpu():
    # TRITON_INTERPRET=1 with a CUDA tensor: the GPU rules still decide
    assert select(capability=(7, 5), interpreter=True).tactic == ATEN


@pytest.mark.parametrize("device, capability", [("cuda", (9, 0)), ("cuda", (7, 0)), ("cpu", None)])
@pytest.mark.parametrize("winner, mode", [(TRITON, INFERENCE), (ATEN, INFERENCE), (MODULES, INFERENCE),
                                          (ATEN_BN, FROZEN_BN_TRAINING), (ATEN_BN, BN_TRAINING)])
def test_recorded_winner_wins(device, capability, winner, mode):
    choice = select(device=device, capability=capability, batch=3, dtype=torch.bfloat16, winner=winner, mode=mode)
    assert choice.tactic == winner
    assert choice.reason == f"tuned winner for bfloat16, batch 2-16, {mode}"


def test_winner_that_cannot_run_the_mode_is_refused():
    with pytest.raises(ValueError, match="cannot run mode 'bn-training'"):
        select(mode=BN_TRAINING, winner=TRITON)
    with pytest.raises(ValueError, match="cannot run mode 'inference'"):
        select(mode=INFERENCE, winner=ATEN_BN)
    with pytest.raises(ValueError, match="cannot run mode"):
        select(winner="cudnn")


@pytest.mark.parametrize("capability", [(8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_untuned_sm80_and_newer_run_triton_in_inference(capability, dtype):
    choice = select(capability=capability, dtype=dtype, mode=INFERENCE)
    assert choice.tactic == TRITON
    assert choice.reason == (f"untuned sm_{capability[0]}{capability[1]}: Triton kernels "
                             "(compiled and tested for sm_80 and newer)")


def test_untuned_float32_with_tf32_runs_aten():
    """An untuned GPU runs fp32 with TF32 on cuDNN: the kernels' truncating TF32 dots measured 3x
    the modules' error on an H200, and their rounding fix is not measured on a GPU yet."""
    choice = select(dtype=torch.float32, mode=INFERENCE, tf32=True)
    assert choice.tactic == ATEN
    assert "TF32" in choice.reason and "not measured on a GPU" in choice.reason
    assert select(dtype=torch.float32, mode=INFERENCE, tf32=False).tactic == TRITON
    # a recorded winner is the tuner's, checked against float64 with TF32 as it runs: it wins
    assert select(dtype=torch.float32, mode=INFERENCE, tf32=True, winner=TRITON).tactic == TRITON


@pytest.mark.parametrize("capability", [(7, 0), (7, 5), (6, 1)])
def test_untuned_older_gpus_run_aten(capability):
    choice = select(capability=capability)
    assert choice.tactic == ATEN
    assert choice.reason == (f"untuned sm_{capability[0]}{capability[1]}: older than sm_80, "
                             "which the Triton kernels are tested for")


def test_untuned_gpu_float64_runs_aten():
    choice = select(capability=(9, 0), dtype=torch.float64)
    assert choice == tactics.Choice(ATEN, "untuned sm_90: the Triton kernels do not take float64")


@pytest.mark.parametrize("capability", [(9, 0), (8, 0), (7, 5)])
@pytest.mark.parametrize("mode", [FROZEN_BN_TRAINING, BN_TRAINING])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("tf32", [False, True])
def test_untuned_gpu_training_runs_aten_bn(capability, mode, dtype, tf32):
    """The H200 measurement (tactics.GPU_TRAINING_DEFAULT): aten-bn in both training modes."""
    choice = select(capability=capability, mode=mode, dtype=dtype, tf32=tf32)
    assert choice.tactic == ATEN_BN == tactics.GPU_TRAINING_DEFAULT
    assert choice.reason.startswith(f"untuned sm_{capability[0]}{capability[1]}, {mode}: aten-bn")


def test_cuda_without_capability_is_refused():
    with pytest.raises(ValueError, match="compute capability"):
        select(capability=None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt, fmt_name", [(NCHW, "nchw"), (CL, "channels_last")])
def test_cpu_runs_the_measured_fastest(mode, fmt, fmt_name):
    choice = select(device="cpu", capability=None, fmt=fmt, mode=mode, dtype=torch.float32, batch=1)
    assert choice.tactic == tactics.CPU_FASTEST[(mode, fmt_name)]
    assert choice.reason == f"CPU, {mode}, {fmt_name}: fastest in the committed CPU measurement"


def test_cpu_table_covers_every_mode_and_format_with_a_tactic_that_can_run_it():
    assert set(tactics.CPU_FASTEST) == {(m, f) for m in MODES for f in ("nchw", "channels_last")}
    for (mode, _), tactic in tactics.CPU_FASTEST.items():
        assert tactic in tactics.TACTICS_BY_MODE[mode]
        # without the interpreter the CPU has no Triton kernels
        assert tactic != TRITON


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        select(mode="training")
    with pytest.raises(ValueError, match="unsupported device type"):
        select(device="mps", capability=None)
    with pytest.raises(ValueError, match="contiguous_format or torch.channels_last"):
        select(fmt=torch.preserve_format)
    with pytest.raises(ValueError, match="positive int"):
        select(batch=0)


@pytest.mark.parametrize("batch, label", [(1, "1"), (2, "2-16"), (16, "2-16"), (17, "17-64"), (64, "17-64"),
                                          (65, "65+"), (4096, "65+")])
def test_batch_buckets(batch, label):
    assert batch_bucket(batch) == label


def test_batch_buckets_tile_the_positive_ints():
    labels = [label for label, _, _ in tactics.BATCH_BUCKETS]
    assert labels == ["1", "2-16", "17-64", "65+"]
    for (_, _, last), (_, first, _) in zip(tactics.BATCH_BUCKETS, tactics.BATCH_BUCKETS[1:]):
        assert first == last + 1
    with pytest.raises(ValueError):
        batch_bucket(-3)


def test_tactic_key():
    block = (192, 64, 96, 128, 16, 32, 32, 3, 3)
    key = TacticKey.of("NVIDIA H100 80GB HBM3", block, torch.float16, 32, FROZEN_BN_TRAINING)
    assert key == TacticKey("NVIDIA H100 80GB HBM3", block, "float16", "17-64", FROZEN_BN_TRAINING)
    assert str(key) == "NVIDIA H100 80GB HBM3|192x64x96x128x16x32x32x3x3|float16|17-64|frozen-bn-training"
    # batches in one bucket share the key, the next bucket does not
    assert TacticKey.of("g", block, torch.float16, 17, INFERENCE) == TacticKey.of("g", block, torch.float16, 64, INFERENCE)
    assert TacticKey.of("g", block, torch.float16, 64, INFERENCE) != TacticKey.of("g", block, torch.float16, 65, INFERENCE)
    with pytest.raises(ValueError, match="block shape"):
        TacticKey.of("g", block[:7], torch.float16, 1, INFERENCE)
    with pytest.raises(ValueError, match="unknown mode"):
        TacticKey.of("g", block, torch.float16, 1, "eval")
