"""The tactic rows of ``python -m fused_inception tune``: which implementation of a fused block
(``fused_inception.tactics``: ``triton``, ``aten``, ``aten-bn``, ``modules``) is fastest on this GPU, per
(block shape, dtype, batch bucket, mode) -- a ``tactics.TacticKey`` -- recorded in the GPU's tuned
file beside the kernel configs (the ``"tactics"`` entries of ``kernels/tuned_configs.py``).

One row = one GoogLeNet block (torchvision variant, random weights and BN statistics, signed
input) at one dtype, batch and mode, swapped for a ``FusedInception``:

* ``inference``: BN in eval, no autograd: one forward;
* ``frozen-bn-training``: BN in eval, parameters and input requiring grad: forward + backward;
* ``bn-training``: BN in training (batch statistics): forward + backward (Triton has no kernel
  for it: the candidates are ``aten``, which is the BN-training op there, ``aten-bn`` and the
  modules).

The config tuner's rules (``command.py``), applied to tactics: every candidate, run through
``selection.force_tactic``, is first checked against the float64 block (its output at the
dtype's tolerance; in training, also the input gradient, against the larger of that and
BASELINE_FACTOR x the unfused block's own error in the same dtype, as parity checks a whole
network) and must report that it ran the forced tactic; a candidate that fails or raises is
rejected with the reason, however fast. The others are timed by the tuner's timer
(``rules.stream_timer`` on the GPU: back-to-back calls, as in a network; tests script it), the
default first. The default is what an untuned GPU runs (``tactics.select_tactic`` without a
winner); a faster candidate replaces it only when at least ``rules.MIN_GAIN`` (3%) faster. A row whose default fails is recorded as
failed (a bug, not a tuning result); rows with a single candidate are skipped; rows the time
budget does not reach are listed as incomplete and keep the untuned default.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from fused_inception.dtypes import dtype_name
from fused_inception.forward import output_memory_format, runs_tf32
from fused_inception.kernels.tuned_configs import tactic_entry
from fused_inception.models.randomize import random_block
from fused_inception.module import FusedInception
from fused_inception.patching import fuse
from fused_inception.selection import block_shape, force_tactic
from fused_inception.spec import GOOGLENET_BLOCKS, googlenet_spec
from fused_inception.tactics import (BN_TRAINING, INFERENCE, MODES, TACTICS, TACTICS_BY_MODE, TRITON, TRITON_DTYPES,
                                     TacticKey, batch_bucket, select_tactic)
from fused_inception.tolerances import compare, compare_with_baseline, tolerance_key
from fused_inception.tools.tune.rules import MIN_GAIN, DeviceUnusable, Timer, candidate_failure

Tensor = torch.Tensor

# one batch per tactics.BATCH_BUCKETS bucket (1 | 2-16 | 17-64 | 65+), in that order
DEFAULT_TACTIC_BATCHES: tuple[int, ...] = (1, 8, 32, 256)


@dataclass(frozen=True)
class TacticCase:
    """One row's tensors: the fused block in the row's dtype and mode, its input (``layout``), the
    upstream gradient (training modes), and the float64 block's output and input gradient."""

    block: str  # GoogLeNet block name, e.g. "4d"
    mode: str  # one of tactics.MODES
    fused: FusedInception
    x: Tensor  # [N, C_in, H, W], the row's dtype
    grad_out: Tensor | None  # [N, C_out, H, W], the row's dtype; None in inference
    ref_out: Tensor  # [N, C_out, H, W] float64
    ref_grad: Tensor | None  # [N, C_in, H, W] float64 input gradient; None in inference
    eager_grad: Tensor | None  # the unfused block's input gradient in the row's dtype (the baseline)
    tol_key: str  # tolerances.TOLERANCES key

    @property
    def shape(self) -> tuple[int, ...]:
        """The block's TacticKey shape."""
        return block_shape(self.fused.match.conv_units(self.fused))


def _forward_backward(module: torch.nn.Module, x: Tensor, grad_out: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """(output, input gradient or None): one forward, and one backward of ``grad_out`` when given."""
    if grad_out is None:
        with torch.no_grad():
            return module(x), None
    x = x.detach().requires_grad_()
    module.zero_grad(set_to_none=True)
    out = module(x)
    out.backward(grad_out)
    return out, x.grad


def make_tactic_case(block: str, dtype: torch.dtype, batch: int, mode: str, device: str,
                     layout: torch.memory_format, seed: int, hw: int | None = None) -> TacticCase:
    """A random torchvision-variant block at its GoogLeNet image size (``hw`` overrides it: small
    sizes for tests), fused, in ``dtype`` on ``device``, its BN in ``mode``'s state."""
    gen = torch.Generator().manual_seed(seed)
    spec = googlenet_spec(block, "torchvision")
    size = hw or GOOGLENET_BLOCKS[block][1]
    reference = random_block(spec, gen).to(device)
    x64 = torch.randn((batch, spec.in_channels, size, size), generator=gen, dtype=torch.float64)
    x = x64.to(dtype).to(device=device, memory_format=layout)
    training = mode != INFERENCE
    batch_stats = mode == BN_TRAINING
    grad_out = None
    if training:
        g64 = torch.randn((batch, spec.out_channels, size, size), generator=gen, dtype=torch.float64)
        grad_out = g64.to(dtype).to(device=device, memory_format=output_memory_format(x))

    def prepared(module: torch.nn.Module, to: torch.dtype) -> torch.nn.Module:
        module = copy.deepcopy(module).to(dtype=to).train(batch_stats)
        for p in module.parameters():
            p.requires_grad_(training)
        return module

    # the reference sees the rounded input and gradient
    ref_out, ref_grad = _forward_backward(prepared(reference, torch.float64), x.double(),
                                          None if grad_out is None else grad_out.double())
    eager_grad = None
    if training:
        eager_grad = _forward_backward(prepared(reference, dtype), x, grad_out)[1]
    fused = fuse(prepared(reference, dtype))
    if not isinstance(fused, FusedInception):
        raise RuntimeError(f"fuse() did not swap block {block}")
    return TacticCase(block, mode, fused, x, grad_out, ref_out.detach(), ref_grad, eager_grad,
                      tolerance_key(dtype, runs_tf32(device, dtype)))


def tactic_call(case: TacticCase, tactic: str) -> Callable[[], tuple[Tensor, Tensor | None]]:
    """One call of the case's step (forward; in training, forward + backward) with ``tactic``
    forced; returns (output, input gradient or None)."""
    def call():
        with force_tactic(tactic):
            return _forward_backward(case.fused, case.x, case.grad_out)
    return call


def check_tactic(case: TacticCase, tactic: str) -> str | None:
    """None if ``tactic`` runs and matches the float64 reference (see the module docstring), else
    why not."""
    out, grad = tactic_call(case, tactic)()
    ran = case.fused.last_tactic
    if ran is None or ran[0] != tactic:
        return f"asked for {tactic}, the block ran {ran[0] if ran else 'nothing it recorded'}" + \
            (f" ({ran[1]})" if ran else "")
    result = compare(out, case.ref_out, case.tol_key)
    if not result.passed:
        return f"output: {result}"
    if grad is not None:
        result = compare_with_baseline(grad, case.ref_grad, case.eager_grad, case.tol_key)
        if not result.passed:
            return f"input gradient: {result}"
    return None


def candidates(mode: str, dtype: torch.dtype, allowed: Sequence[str] = TACTICS) -> tuple[str, ...]:
    """The tactics that can run ``mode`` in ``dtype``, among ``allowed``, in TACTICS order."""
    return tuple(t for t in TACTICS_BY_MODE[mode] if t in allowed and (t != TRITON or dtype in TRITON_DTYPES))


def untuned_default(device: str, capability: tuple[int, int] | None, dtype: torch.dtype, batch: int,
                    layout: torch.memory_format, mode: str) -> str:
    """The tactic a block runs without a recorded winner (the policy, interpreter off, with this
    process's TF32 setting for float32 on a GPU)."""
    return select_tactic(device, capability, dtype, batch, layout, mode, interpreter=False,
                         tf32=runs_tf32(device, dtype)).tactic


class DefaultTacticFailed(RuntimeError):
    """The untuned default tactic of a row fails its float64 check or raises: a bug in that tactic,
    not a tuning result."""


def tune_tactic_row(case: TacticCase, names: Sequence[str], timer: Timer,
                    deadline: float = float("inf")) -> dict | None:
    """Check and time each tactic of ``names`` (the default first) on the case; the row (the
    fastest, if at least MIN_GAIN faster than the default, else the default), or None when
    ``deadline`` (time.monotonic) passes first. Raises DefaultTacticFailed when the default fails
    and DeviceUnusable when an error leaves the device unable to run anything more."""
    timed: dict[str, float] = {}
    rejected: dict[str, str] = {}
    for name in names:
        if time.monotonic() > deadline:
            return None
        try:
            why = check_tactic(case, name)
            if why is None:
                call = tactic_call(case, name)
                timed[name] = float(timer(call))
        except Exception as err:  # a tactic that cannot run here is out; the row goes on
            why = candidate_failure(err, case.x.device, f"tactic {name} on {case.block} {case.mode}")
        if why is not None:
            if name == names[0]:
                raise DefaultTacticFailed(f"default tactic {name} fails on {case.block} ({case.mode}): {why}")
            rejected[name] = why
    default = names[0]
    choice = min(timed, key=timed.get)
    if timed[choice] > (1 - MIN_GAIN) * timed[default]:
        choice = default
    return {"tactic": choice, "default": default, "speedup_vs_default": timed[default] / timed[choice],
            "median_ms": timed, "rejected": rejected}


@dataclass(frozen=True)
class TacticRow:
    """What one tactic row tunes."""

    block: str
    dtype: torch.dtype
    batch: int
    mode: str

    @property
    def label(self) -> str:
        return f"tactic {self.block} {dtype_name(self.dtype)} batch {self.batch} {self.mode}"


def tactic_rows(blocks: Sequence[str], dtypes: Sequence[torch.dtype], batches: Sequence[int],
                modes: Sequence[str]) -> list[TacticRow]:
    """The rows in tuning order: dtype, then mode, then batch, then block (a run cut short by the
    budget has every block of the first settings). Two batches in one bucket would record the
    same TacticKey twice: ValueError."""
    buckets = [batch_bucket(b) for b in batches]
    if len(set(buckets)) != len(buckets):
        raise ValueError(f"batches {list(batches)} fall in the buckets {buckets}: give one batch per bucket")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected some of {', '.join(MODES)}")
    return [TacticRow(block, dtype, batch, mode) for dtype in dtypes for mode in modes for batch in batches
            for block in blocks]


def tune_tactics(rows: Sequence[TacticRow], *, device: str, gpu: str, capability: tuple[int, int] | None,
                 timer: Timer, budget_s: float, allowed: Sequence[str] = TACTICS,
                 layout: torch.memory_format = torch.channels_last, seed: int = 0, hw: int | None = None,
                 progress: Callable[[str], None] = lambda line: None,
                 on_row: Callable[[dict], None] = lambda part: None) -> dict:
    """Tune the tactic rows in order within ``budget_s``. Returns ``{"tactics": [tuned-file
    entries], "rows": [per-row details: key, timings, rejections], "incomplete": [labels],
    "failed": [{"row", "error"}]}``; ``on_row`` gets that after every row that tuned or failed."""
    deadline = time.monotonic() + budget_s
    part: dict = {"tactics": [], "rows": [], "incomplete": [], "failed": []}
    for i, row in enumerate(rows):
        names = candidates(row.mode, row.dtype, allowed)
        default = untuned_default(device, capability, row.dtype, row.batch, layout, row.mode)
        names = (default, *(n for n in names if n != default)) if default in names else names
        if len(names) <= 1:
            progress(f"{row.label}: {len(names)} candidate(s), nothing to tune")
            continue
        if time.monotonic() > deadline:
            part["incomplete"].append(row.label)
            continue
        try:
            case = make_tactic_case(row.block, row.dtype, row.batch, row.mode, device, layout, seed + i, hw)
            result = tune_tactic_row(case, names, timer, deadline)
        except DefaultTacticFailed as err:
            part["failed"].append({"row": row.label, "error": str(err)})
            progress(f"{row.label}: FAILED: {err}")
            on_row(part)
            continue
        except DeviceUnusable as err:  # nothing more can run: the rest stays untuned
            part["failed"].append({"row": row.label, "error": str(err)})
            part["incomplete"] += [r.label for r in rows[i + 1:]]
            progress(f"{row.label}: STOPPED: {err}")
            on_row(part)
            return part
        if result is None:
            part["incomplete"].append(row.label)
            progress(f"{row.label}: out of time")
            continue
        key = TacticKey.of(gpu, case.shape, row.dtype, row.batch, row.mode, runs_tf32(device, row.dtype))
        timings = result["median_ms"]
        # the file's timings must name the recorded tactic as the fastest: a default kept within
        # the margin is recorded without them (the row details below keep them)
        fastest = min(timings, key=timings.get) == result["tactic"]
        part["tactics"].append(tactic_entry(key.block, key.dtype, key.batch, key.mode, result["tactic"],
                                            timings if fastest else None))
        part["rows"].append({"key": str(key), "block": row.block, "batch": row.batch, **result})
        progress(f"{row.label}: {result['tactic']} ({result['speedup_vs_default']:.2f}x the default "
                 f"{result['default']}; {len(result['rejected'])} rejected)")
        on_row(part)
        del case
        if device == "cuda":
            torch.cuda.empty_cache()
    return part


def format_tactic_rows(part: dict) -> str:
    """One line per tuned tactic row: winner, default, speedup, each candidate's median ms."""
    lines = []
    for r in part["rows"]:
        times = ", ".join(f"{t} {ms:.3f}" for t, ms in r["median_ms"].items())
        rejected = f"; rejected {', '.join(r['rejected'])}" if r["rejected"] else ""
        lines.append(f"    {r['key']}: {r['tactic']} ({r['speedup_vs_default']:.2f}x the default {r['default']}; "
                     f"ms {times}{rejected})")
    return "\n".join(lines)


def with_tactics(doc: dict, part: dict, settings: dict) -> dict:
    """The tuned-file document ``doc`` (the config tuner's) with the tactic part added: the
    winners as its ``"tactics"`` entries, and under ``tuned.tactics`` how they were measured
    (``settings``: blocks, dtypes, batches, modes, budget...), every row's timings and rejections,
    and the rows left incomplete or failed."""
    doc = dict(doc, tactics=list(part["tactics"]))
    doc["tuned"] = dict(doc["tuned"], tactics={**settings, "rows": list(part["rows"]),
                                               "incomplete": list(part["incomplete"]),
                                               "failed": list(part["failed"])})
    return doc
