"""Tactics of one fused Inception block and the pure policy that picks one per call.

A tactic is one implementation of the block with the same numerics contract (float64-reference
parity at tolerances.TOLERANCES):

* ``triton``: the fused Triton kernels (forward.inception_forward; on the CPU they run only under the
  Triton interpreter), backward by backward.py;
* ``aten``: aten_forward.py: BN folded, the three input 1x1 convs as one conv, the k x k convs and
  the pool projection on cuDNN/oneDNN, autograd for the backward. In BN training (batch statistics)
  the aten tactic is the BN-training op (bn_train.py), which is built from aten ops as well;
* ``aten-bn``: aten_bn_forward.py: every BatchNorm kept as one (batch or running statistics, no
  fold), the three input 1x1 convs as one conv and their BNs as one batch_norm, autograd for the
  backward: the training modes;
* ``modules``: the block's original modules, unfused.

Modes (MODES): ``inference`` (every BN in eval, no autograd), ``frozen-bn-training`` (autograd
with BN in eval), ``bn-training`` (some BN uses batch statistics: Triton has no kernel for it,
so only ``aten``, ``aten-bn`` and ``modules``).

The policy (``select_tactic``), first rule that applies:

1. CPU with the Triton interpreter on (TRITON_INTERPRET=1) -> ``triton``: the kernels are what is
   tested there;
2. a recorded winner for the call's TacticKey (from the GPU's tuned file) -> the winner (the key
   tells float32 with TF32 allowed, "tf32", from IEEE float32: the tuner checks and times every
   candidate in the setting it records);
3. a GPU without a record: in both training modes ``aten-bn`` (GPU_TRAINING_DEFAULT); in
   inference ``triton`` on compute capability 8.0 and newer (the GPUs the kernels are compiled and
   tested for) for the kernels' dtypes, ``aten`` otherwise (older GPUs, float64, and float32 where
   TF32 is allowed: there the kernels' dots truncated their operands where cuDNN rounds them, 3x
   less exact than the modules on an H200, 1.0-1.1e-3 against 2.9-3.4e-4 relative,
   benchmarks/results/nvidia-h200-20261130-2337.md; they now round them as cuDNN does,
   kernels/tf32.py, which no GPU has measured yet); the caller warns once that the GPU is untuned;
4. the CPU (interpreter off) -> CPU_FASTEST[(mode, memory format)], the tactic a measurement found
   fastest (see CPU_FASTEST for the figures and the commands).

TacticKey is what a tuned file records a winner under: (GPU name, block shape, dtype, batch
bucket, mode). Batch buckets (BATCH_BUCKETS): 1 | 2-16 | 17-64 | 65+; a batch of 1 is its own
bucket (latency serving: GEMMs with M = H*W only), 2-16 and 17-64 split small from medium training
and serving batches, and past 64 every GoogLeNet GEMM is large enough that the ranking no longer
moves with the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .dtypes import KERNEL_DTYPES
from .kernels.tuned_configs import TACTIC_BATCH_BUCKETS, TACTIC_MODES, TACTIC_NAMES, TacticRecordKey
from .kernels.tuned_configs import TACTICS_BY_MODE as _TACTICS_BY_MODE

# the names a tuned file records (their home is kernels/tuned_configs.py, which cannot import this
# module): tactics, modes, which tactics can run each mode, batch bucket labels
TACTICS: tuple[str, ...] = TACTIC_NAMES
TRITON, ATEN, ATEN_BN, MODULES = TACTICS
MODES: tuple[str, ...] = TACTIC_MODES
INFERENCE, FROZEN_BN_TRAINING, BN_TRAINING = MODES
TACTICS_BY_MODE: dict[str, tuple[str, ...]] = _TACTICS_BY_MODE

# the oldest compute capability the Triton kernels are compiled and tested for (sm_80)
TRITON_MIN_CAPABILITY: tuple[int, int] = (8, 0)
# the dtypes the Triton kernels take
TRITON_DTYPES: tuple[torch.dtype, ...] = KERNEL_DTYPES

# (label, first batch, last batch or None for no bound), in order; the labels are the tuned file's
BATCH_BUCKETS: tuple[tuple[str, int, int | None], ...] = tuple(
    zip(TACTIC_BATCH_BUCKETS, (1, 2, 17, 65), (1, 16, 64, None)))

FORMAT_NAMES: dict[torch.memory_format, str] = {
    torch.contiguous_format: "nchw", torch.channels_last: "channels_last",
}

# The CPU default per (mode, memory format), from the whole-network run of the README's "CPU
# figures" command (torch 2.14.1 CPU, 2 threads, torchvision GoogLeNet 224x224, batch 1 and 8,
# each case's methods timed in interleaved rounds, benchmarks/results/cpu-2core-e8083f5.json):
# fused / eager median with the same memory format
# * inference, aten: 1.05-1.36x (NCHW 1.31-1.36x: on the CPU the aten tactics compute in
#   channels_last, block_io.aten_compute_layout; channels_last 1.05-1.06x);
# * BN training and frozen-BN training, aten-bn: 1.01-1.17x (NCHW 1.05-1.17x, channels_last
#   1.01-1.05x, within the runs' p20-p80 spread). Eager runs the very modules the modules tactic
#   would (minus the wrapper), so aten-bn beat modules too; in frozen-BN training it also keeps
#   BN's own gamma gradients, where aten's fold on the autograd path loses float32 digits when
#   its two sums cancel (docs/DESIGN.md).
# The aten tactic's own design choices (one input conv, relu_, cat, cached layouts) were timed per
# block by benchmarks/aten_tactic_variants.py.
CPU_FASTEST: dict[tuple[str, str], str] = {
    (INFERENCE, "nchw"): ATEN,
    (INFERENCE, "channels_last"): ATEN,
    (FROZEN_BN_TRAINING, "nchw"): ATEN_BN,
    (FROZEN_BN_TRAINING, "channels_last"): ATEN_BN,
    (BN_TRAINING, "nchw"): ATEN_BN,
    (BN_TRAINING, "channels_last"): ATEN_BN,
}


# The untuned GPU default in both training modes. Whole torchvision GoogLeNet training step, bf16,
# batch 256, channels_last, on an H200 (median ms; benchmarks/results/nvidia-h200-20261130-2337.md
# and nvidia-h200-tactics-20261130-2350.*, every block forced to one tactic by bench
# --force-tactic):
# * BN training: aten-bn 37.71, modules 38.52, eager 38.57, aten (the BN-training op, which
#   recomputes the block in backward) 68.59;
# * frozen-BN training: aten 41.12, aten-bn 41.60 (p20-p80 overlapping aten's), modules 42.16,
#   eager 42.20, triton (the kernels forward, backward.py) 50.92. aten-bn, not aten: within the
#   spread of it, and it keeps BN's own gamma gradients, which aten's fold on the autograd path
#   loses digits of when its two sums cancel (docs/DESIGN.md).
GPU_TRAINING_DEFAULT: str = ATEN_BN


def batch_bucket(batch: int) -> str:
    """The BATCH_BUCKETS label holding ``batch`` (>= 1)."""
    for label, first, last in BATCH_BUCKETS:
        if batch >= first and (last is None or batch <= last):
            return label
    raise ValueError(f"batch must be a positive int, got {batch!r}")


def format_name(memory_format: torch.memory_format) -> str:
    """"nchw" or "channels_last"."""
    if memory_format not in FORMAT_NAMES:
        raise ValueError(f"expected torch.contiguous_format or torch.channels_last, got {memory_format}")
    return FORMAT_NAMES[memory_format]


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {list(MODES)}")


@dataclass(frozen=True)
class TacticKey:
    """What a tuned file records a tactic winner under.

    ``block``: the block's shape (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj, k3, k5);
    ``dtype``: "float32", "tf32" (float32 with TF32 allowed), "float16", ...; ``batch``: a
    BATCH_BUCKETS label; ``mode``: one of MODES.
    """

    gpu: str
    block: tuple[int, ...]
    dtype: str
    batch: str
    mode: str

    @classmethod
    def of(cls, gpu: str, block: tuple[int, ...], dtype: torch.dtype, batch: int, mode: str,
           tf32: bool = False) -> "TacticKey":
        """``tf32``: a float32 call with TF32 allowed, recorded under the dtype label "tf32"."""
        check_mode(mode)
        if len(block) != 9:
            raise ValueError(f"block shape must be (in, 1x1, 3x3 red, 3x3, 5x5 red, 5x5, pool, k3, k5), got {block}")
        label = "tf32" if tf32 and dtype == torch.float32 else str(dtype).removeprefix("torch.")
        return cls(gpu, tuple(int(c) for c in block), label, batch_bucket(batch), mode)

    @property
    def record_key(self) -> TacticRecordKey:
        """The key of this record within its GPU's tuned file (kernels/tuned_configs.py)."""
        return (self.block, self.dtype, self.batch, self.mode)

    def __str__(self) -> str:
        """One string, as a JSON object key: ``gpu|192x64x96x128x16x32x32x3x5|float16|2-16|inference``."""
        return "|".join((self.gpu, "x".join(map(str, self.block)), self.dtype, self.batch, self.mode))


@dataclass(frozen=True)
class Choice:
    """A selected tactic and the one-line reason for it."""

    tactic: str
    reason: str


def select_tactic(
    device_type: str,
    capability: tuple[int, int] | None,
    dtype: torch.dtype,
    batch: int,
    memory_format: torch.memory_format,
    mode: str,
    interpreter: bool,
    winner: str | None = None,
    tf32: bool = False,
) -> Choice:
    """The tactic for one block call (rules in the module docstring). Pure: no device queries.

    ``device_type``: "cuda" or "cpu"; ``capability``: the GPU's (major, minor), None off CUDA;
    ``interpreter``: TRITON_INTERPRET=1; ``winner``: the tuned file's tactic for the call's
    TacticKey, or None without a record; ``tf32``: a float32 call where PyTorch's conv rule allows
    TF32 (forward.cudnn_conv_allows_tf32).
    """
    check_mode(mode)
    fmt = format_name(memory_format)
    bucket = batch_bucket(batch)
    name = str(dtype).removeprefix("torch.")
    if device_type == "cpu" and interpreter:
        return Choice(TRITON, "CPU under TRITON_INTERPRET=1: the Triton kernels are what is tested")
    if winner is not None:
        if winner not in TACTICS_BY_MODE[mode]:
            raise ValueError(f"tuned winner {winner!r} cannot run mode {mode!r}; expected one of {TACTICS_BY_MODE[mode]}")
        return Choice(winner, f"tuned winner for {name}, batch {bucket}, {mode}")
    if device_type == "cuda":
        if capability is None:
            raise ValueError("a CUDA device needs its compute capability")
        sm = f"sm_{capability[0]}{capability[1]}"
        if mode != INFERENCE:
            return Choice(GPU_TRAINING_DEFAULT,
                          f"untuned {sm}, {mode}: {GPU_TRAINING_DEFAULT}, ahead of the modules in the committed "
                          "H200 measurement (the Triton kernels' backward and the BN-training op were behind them)")
        if dtype not in TRITON_DTYPES:
            return Choice(ATEN, f"untuned {sm}: the Triton kernels do not take {name}")
        if tf32:
            return Choice(ATEN, f"untuned {sm}: float32 with TF32 allowed: cuDNN's TF32 (the kernels' TF32 "
                                "operand rounding is not measured on a GPU yet; their truncating dots were 3x "
                                "less exact)")
        if tuple(capability) >= TRITON_MIN_CAPABILITY:
            return Choice(TRITON, f"untuned {sm}: Triton kernels (compiled and tested for sm_80 and newer)")
        return Choice(ATEN, f"untuned {sm}: older than sm_80, which the Triton kernels are tested for")
    if device_type == "cpu":
        tactic = CPU_FASTEST[(mode, fmt)]
        return Choice(tactic, f"CPU, {mode}, {fmt}: fastest in the committed CPU measurement")
    raise ValueError(f"unsupported device type {device_type!r}; expected 'cuda' or 'cpu'")
