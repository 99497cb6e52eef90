"""Which tactic a FusedInception call runs: the call's facts (device, compute capability, GPU name,
dtype, batch, memory format, interpreter flag), the tuned file's recorded winner, and the policy
(``tactics.select_tactic``, whose docstring has the rules).

A GPU without a recorded winner for the call runs the policy's default and gives ONE
``UntunedGPUWarning`` per process (the first such call), saying how to tune it.

Two thread-local overrides, for tests and for tools that time the tactics through the module:

* ``force_tactic(name)``: every FusedInception call of this thread runs ``name`` (reason
  "forced"); in BN training ``triton`` means the BN-training op, as the module maps it;
* ``use_tuned_table(table)``: recorded winners are read from ``table`` (a
  ``kernels.tuned_configs.TunedTable``) on every device, instead of the GPU's tuned file: a GPU
  record faked without CUDA.

Both are read when a call runs eagerly, or when torch.compile traces it: a compiled graph keeps the
tactic it was traced with (as it keeps the Triton interpreter flag).

``tactic_lines`` says in a few lines what a set of blocks will run per device class
(``patching.fuse_with_report`` prints them).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from .block_io import output_memory_format
from .forward import cuda_device_name, cudnn_conv_allows_tf32, interpreter_enabled
from .kernels.tuned_configs import TunedTable, tuned_table
from .tactics import (BN_TRAINING, CPU_FASTEST, FORMAT_NAMES, FROZEN_BN_TRAINING, GPU_TRAINING_DEFAULT, INFERENCE,
                      MODES, TACTICS, TRITON_MIN_CAPABILITY, Choice, TacticKey, batch_bucket, select_tactic)
from .thread_stacks import ThreadStack

Tensor = torch.Tensor


class UntunedGPUWarning(UserWarning):
    """A fused block ran on a GPU whose tuned file records no tactic winner for the call: it runs
    the untuned default (``tactics.select_tactic``'s rules: aten-bn in training; in inference the
    Triton kernels on sm_80 and newer, the aten tactic elsewhere and for fp32 with TF32). Given once
    per process, by an eager call (not while torch.compile traces); ``python -m fused_inception
    tune`` on that GPU records the winners."""


_untuned_warned = False
# this thread's overrides, innermost last
_forced = ThreadStack()
_tables = ThreadStack()


def force_tactic(tactic: str) -> contextlib.AbstractContextManager[str]:
    """Run every FusedInception call of this thread inside the ``with`` block as ``tactic``
    ("triton", "aten" or "modules"; innermost wins)."""
    if tactic not in TACTICS:
        raise ValueError(f"unknown tactic {tactic!r}; expected one of {list(TACTICS)}")
    return _forced.pushed(tactic)


def use_tuned_table(table: TunedTable) -> contextlib.AbstractContextManager[TunedTable]:
    """Read recorded winners from ``table`` on every device (CPU included) inside the ``with``
    block, instead of the GPU's tuned file (innermost wins)."""
    return _tables.pushed(table)


def block_shape(units: Mapping[str, tuple[nn.Conv2d, nn.Module | None]]) -> tuple[int, ...]:
    """A block's TacticKey shape (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj, k3, k5)
    from its six (conv, bn) units (folding.UNIT_NAMES)."""
    conv = {name: unit[0] for name, unit in units.items()}
    return (conv["branch1"].in_channels, conv["branch1"].out_channels, conv["reduce3"].out_channels,
            conv["conv3"].out_channels, conv["reduce5"].out_channels, conv["conv5"].out_channels,
            conv["pool_proj"].out_channels, conv["conv3"].kernel_size[0], conv["conv5"].kernel_size[0])


def call_mode(batch_stats: bool, needs_grad: bool) -> str:
    """The tactics' mode of a call: BN training when some BN uses batch statistics, else
    frozen-BN training when autograd records the call, else inference."""
    return BN_TRAINING if batch_stats else FROZEN_BN_TRAINING if needs_grad else INFERENCE


def choose_tactic(x: Tensor, dtype: torch.dtype, mode: str, block: tuple[int, ...]) -> Choice:
    """The tactic for one call of a block of shape ``block`` on ``x`` computed in ``dtype``."""
    forced = _forced.innermost()
    if forced is not None:
        return Choice(forced, "forced (selection.force_tactic)")
    capability, gpu, tf32_allowed = None, None, False
    if x.device.type == "cuda":
        capability, gpu, tf32_allowed = _cuda_facts(x.device.index if x.device.index is not None
                                                    else torch.cuda.current_device())
    return choose_for_device(x.device.type, capability, gpu, dtype, max(x.shape[0], 1), output_memory_format(x),
                             mode, block, interpreter_enabled(), tf32_allowed and dtype == torch.float32)


@torch.compiler.assume_constant_result
def _cuda_facts(index: int) -> tuple[tuple[int, int], str, bool]:
    """(compute capability, name, whether PyTorch's conv rule allows TF32) of CUDA device ``index``.
    torch.compile takes the result as a constant of the graph it traces (dynamo cannot trace the
    TF32 flags' objects nor the device queries): a compiled graph keeps the tactic it was traced
    with, as the module docstring says."""
    return _capability(index), cuda_device_name(index), cudnn_conv_allows_tf32()


def choose_for_device(device_type: str, capability: tuple[int, int] | None, gpu: str | None, dtype: torch.dtype,
                      batch: int, memory_format: torch.memory_format, mode: str, block: tuple[int, ...],
                      interpreter: bool, tf32: bool = False) -> Choice:
    """``select_tactic`` with the recorded winner looked up (``use_tuned_table``'s table, else the
    GPU's tuned file on CUDA), warning once per process on a GPU without a record. ``tf32``: a
    float32 call on a GPU where PyTorch's conv rule allows TF32."""
    table = _tables.innermost()
    if table is None and device_type == "cuda" and gpu:
        table = tuned_table(gpu)
    # the compiler traces the policy itself (once per graph), not the memo: torch 2.11's dynamo
    # cannot trace id(None) (fullgraph compiles of CPU-tensor blocks failed on the H200 machine)
    compiling = torch.compiler.is_compiling()
    facts = None if compiling else (device_type, capability, gpu, dtype, batch_bucket(batch), memory_format, mode,
                                    block, interpreter, tf32, id(table))
    known = None if facts is None else _choices.get(facts)
    if known is None:
        key = TacticKey.of(gpu or device_type, block, dtype, batch, mode, tf32)
        winner = table.tactic_for(*key.record_key) if table is not None else None
        choice = select_tactic(device_type, capability, dtype, batch, memory_format, mode, interpreter, winner,
                               tf32)
        known = _Known(choice, device_type == "cuda" and winner is None, table)
        if facts is not None:
            _choices[facts] = known
    if known.untuned and not compiling:  # warnings.warn is no graph op: eager calls warn
        _warn_untuned(gpu, known.choice)
    return known.choice


class _Known(NamedTuple):
    """A memoised choice: the tactic, whether a GPU runs it untuned (no record: warn), and the
    table its winner came from, kept alive so that its id (in the memo key) is not reused."""

    choice: Choice
    untuned: bool
    table: TunedTable | None


# (a call's facts, id of the table its winner comes from) -> _Known: the policy is a pure function
# of them (the batch only through its bucket), and working it out costs tens of microseconds, on
# every block call otherwise
_choices: dict[tuple, _Known] = {}


def _warn_untuned(gpu: str | None, choice: Choice) -> None:
    global _untuned_warned
    if _untuned_warned:
        return
    _untuned_warned = True
    warnings.warn(UntunedGPUWarning(
        f"fused_inception: no tuned tactic for {gpu or 'this GPU'}: running {choice.tactic} ({choice.reason}); "
        "`python -m fused_inception tune` on it records the fastest per block (warned once per process)"),
        stacklevel=4)


_capabilities: dict[int, tuple[int, int]] = {}


def _capability(index: int) -> tuple[int, int]:
    if index not in _capabilities:
        _capabilities[index] = tuple(torch.cuda.get_device_capability(index))
    return _capabilities[index]


def _cpu_defaults() -> str:
    """The committed CPU default per mode, e.g. "inference aten, frozen-bn-training modules"
    (formats named only where they differ)."""
    parts = []
    for mode in MODES:
        by_format = {name: CPU_FASTEST[(mode, name)] for name in FORMAT_NAMES.values()}
        if len(set(by_format.values())) == 1:
            parts.append(f"{mode} {next(iter(by_format.values()))}")
        else:
            parts.append(f"{mode} " + "/".join(f"{t} ({fmt})" for fmt, t in by_format.items()))
    return ", ".join(parts)


def current_gpu_table() -> tuple[str | None, TunedTable | None]:
    """(GPU name, its tuned table or None) that this thread's calls would read records from:
    ``use_tuned_table``'s table, else the current CUDA device's tuned file; (None, None) without
    either."""
    table = _tables.innermost()
    if table is not None:
        return table.gpu, table
    if not torch.cuda.is_available():
        return None, None
    gpu = torch.cuda.get_device_name(torch.cuda.current_device())
    return gpu, tuned_table(gpu)


def tactic_lines(blocks: Mapping[str, tuple[int, ...]], gpu: str | None,
                 table: TunedTable | None) -> list[str]:
    """What each block runs per device class, and why: the CPU line (the committed measurement),
    the GPU default rule, and for ``gpu`` with a tuned ``table`` one line per block naming its
    recorded winners (or none). ``blocks``: display name -> block shape."""
    sm = f"sm_{TRITON_MIN_CAPABILITY[0]}{TRITON_MIN_CAPABILITY[1]}"
    lines = [f"tactics on the CPU: {_cpu_defaults()} (fastest in the committed CPU measurement; "
             "triton under TRITON_INTERPRET=1)",
             f"tactics on a GPU: the winner its tuned file records per (block, dtype, batch, mode); untuned: "
             f"{GPU_TRAINING_DEFAULT} in training; in inference triton on {sm} and newer, aten on older GPUs, "
             "for float64 and for float32 with TF32 allowed"]
    if gpu is None:
        return lines
    if table is None:
        lines.append(f"tactics on {gpu}: no tuned file, so the untuned rule for every block")
        return lines
    for name, shape in blocks.items():
        records = sorted((key[1], key[2], key[3], tactic) for key, tactic in table.tactics.items()
                         if key[0] == tuple(shape))
        text = "; ".join(f"{dtype} batch {batch} {mode} -> {tactic}" for dtype, batch, mode, tactic in records)
        lines.append(f"tactics on {gpu} for {name}: " + (f"tuned ({table.path.name}): {text}" if records
                                                         else "no record for its shape, so the untuned rule"))
    return lines

