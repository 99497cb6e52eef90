"""Per-GPU tuned kernel configs, stored as data: one JSON file per GPU name in ``kernels/tuned/``,
and the pickers that launch a tuned choice, else the default (``pick_pointwise_config``,
``pick_reduce_conv_config``).

``python -m fused_inception tune`` times every candidate config (``configs.CANDIDATES``) of each
(kernel, dtype, dot precision) on one GPU and writes ``<gpu-slug>.json``; checked in under
``kernels/tuned/``, it is used on every GPU of that name without re-tuning (no autotuning at run
time, so none inside CUDA-graph capture either). The pickers
(``pick_*_config(..., gpu=name)``, below) read it; a (kernel, dtype, precision) the file does not
list launches the default.

File layout (``schema`` 1)::

    {"schema": 1, "gpu": "NVIDIA H200",
     "tuned": {...how and where it was measured: versions, commit, shapes...},
     "choices": [{"kernel": "reduce_conv", "dtype": "bfloat16", "input_precision": "ieee",
                  "config": "mma-p2", "fields": {"BLOCK_M": 64, "BLOCK_HALO": 64, ...},
                  "median_ms": {"mma": 1.91, "mma-p2": 1.62, ...}, "rejected": {...}}, ...]}

A file may also record tactic winners (issue 13: which implementation of a fused block is fastest
on this GPU), one entry per (block shape, dtype, batch bucket, mode) -- with the file's GPU name,
``fused_inception.tactics.TacticKey``::

     "tactics": [{"block": [192, 64, 96, 128, 16, 32, 32, 3, 5], "dtype": "float16",
                  "batch": "2-16", "mode": "inference", "tactic": "aten",
                  "median_ms": {"triton": 0.41, "aten": 0.33, "modules": 0.52}}, ...]

``block``: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj, k3, k5); ``dtype``: one of
TACTIC_DTYPES ("tf32" for float32 with TF32 allowed); ``batch``: a label of
TACTIC_BATCH_BUCKETS; ``mode``: one of TACTIC_MODES; ``tactic``: one of TACTICS_BY_MODE[mode];
``median_ms`` (optional): the timings behind the choice, per tactic. ``tactic_entry`` builds
(and checks) one entry for a writer; ``tuned_tactic`` looks a winner up. This module is the home of
that vocabulary (fused_inception.tactics imports it: kernels/ imports nothing above it).

Only candidate names are accepted, and their ``fields`` must equal the config of that name today:
every candidate is compile-checked for sm_80/sm_90 and run by the interpreter tests, and a file
tuned against tile sizes that have since changed is refused rather than silently launching others.

Environment (read at the first lookup of a process): ``FUSED_INCEPTION_TUNED_DIR`` names a
directory searched before the shipped one (a fresh tuning not yet checked in);
``FUSED_INCEPTION_TUNED=0`` launches the defaults everywhere.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .configs import (INPUT_PRECISIONS, KERNEL_NAMES, PointwiseConfig, ReduceConvConfig, candidate_names,
                      config_by_name)

SCHEMA = 1

# the tactic-record vocabulary (see the module docstring)
TACTIC_NAMES: tuple[str, ...] = ("triton", "aten", "aten-bn", "modules")
TACTIC_MODES: tuple[str, ...] = ("inference", "frozen-bn-training", "bn-training")
# the tactics each mode's records may name: Triton has no kernel for batch statistics, and aten-bn
# (BatchNorm kept, for training) runs inference too but can only lose there to aten's folded BN
TACTICS_BY_MODE: dict[str, tuple[str, ...]] = {
    "inference": ("triton", "aten", "modules"), "frozen-bn-training": TACTIC_NAMES,
    "bn-training": ("aten", "aten-bn", "modules"),
}
# batch bucket labels, in order (fused_inception.tactics.BATCH_BUCKETS gives their bounds)
TACTIC_BATCH_BUCKETS: tuple[str, ...] = ("1", "2-16", "17-64", "65+")
# the dtypes a tactic record may name (float64 runs on the aten tactic and the modules); "tf32" is
# float32 with PyTorch's conv rule allowing TF32, "float32" with it off: a winner timed and checked
# in one of them says nothing of the other
TACTIC_DTYPES: tuple[str, ...] = ("float32", "tf32", "float16", "bfloat16", "float64")
BLOCK_SHAPE_FIELDS = 9  # in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj, k3, k5

# (block shape, dtype, batch bucket, mode): a tactic record's key within one GPU's file
TacticRecordKey = tuple[tuple[int, ...], str, str, str]
SHIPPED_DIR = Path(__file__).parent / "tuned"
ENV_DIR = "FUSED_INCEPTION_TUNED_DIR"
ENV_SWITCH = "FUSED_INCEPTION_TUNED"


class TunedFileError(ValueError):
    """A tuned-config file that cannot be used as it is (its path and the reason in the message)."""


@dataclass(frozen=True)
class TunedTable:
    """The choices of one tuned file: (kernel, dtype, input precision) -> config name, and
    ``tactics``: TacticRecordKey (block shape, dtype, batch bucket, mode) -> tactic name."""

    gpu: str
    path: Path
    choices: dict[tuple[str, str, str], str] = field(hash=False)
    tuned: dict = field(default_factory=dict, hash=False, compare=False)
    tactics: dict[TacticRecordKey, str] = field(default_factory=dict, hash=False)

    def tactic_for(self, block: tuple[int, ...], dtype: str, batch: str, mode: str) -> str | None:
        """The recorded winner for a block shape, dtype name, batch bucket label and mode, or None."""
        return self.tactics.get((tuple(block), dtype, batch, mode))


def gpu_slug(name: str) -> str:
    """A GPU name as a file stem: "NVIDIA H200" -> "nvidia-h200" (benchmarks/gpu_check.sh names
    its result files the same way)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise ValueError(f"GPU name {name!r} has no letters or digits")
    return slug


def config_fields(config) -> dict:
    """A config's fields as a plain dict (what a tuned file stores next to the name), in JSON's
    types (a config's aligned tiles: lists, as the file reads back)."""
    return json.loads(json.dumps(asdict(config)))


def parse_tuned(doc: dict, path: Path) -> TunedTable:
    """Validate a tuned file's contents; raises TunedFileError naming ``path`` and the problem."""
    def fail(why: str) -> TunedFileError:
        return TunedFileError(f"{path}: {why}")

    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise fail(f"not a schema-{SCHEMA} tuned-config file")
    gpu = doc.get("gpu")
    if not isinstance(gpu, str) or not gpu:
        raise fail("no GPU name ('gpu')")
    if gpu_slug(gpu) != path.stem:
        raise fail(f"tuned for {gpu!r}, but the file name says {path.stem!r} (expected {gpu_slug(gpu)}.json)")
    choices: dict[tuple[str, str, str], str] = {}
    for i, entry in enumerate(doc.get("choices") or []):
        try:
            key = (entry["kernel"], entry["dtype"], entry["input_precision"])
            name, fields = entry["config"], entry["fields"]
        except (KeyError, TypeError) as e:
            raise fail(f"choice {i} lacks {e}") from None
        if not all(isinstance(v, str) for v in (*key, name)):
            raise fail(f"choice {i}: kernel, dtype, input_precision and config must be strings")
        if key[0] not in KERNEL_NAMES:
            raise fail(f"choice {i}: unknown kernel {key[0]!r}")
        if key[1] not in INPUT_PRECISIONS or key[2] not in INPUT_PRECISIONS[key[1]]:
            raise fail(f"choice {i}: {key[1]} with {key[2]} dots is never launched")
        allowed = candidate_names(*key)
        if name not in allowed:
            raise fail(f"choice {i}: {name!r} is not a candidate for {' '.join(key)} (candidates: {allowed})")
        if fields != config_fields(config_by_name(key[0], name)):
            raise fail(f"choice {i}: {key[0]} config {name!r} was tuned as {fields}, but is now "
                       f"{config_fields(config_by_name(key[0], name))}: re-tune (python -m fused_inception tune)")
        if key in choices:
            raise fail(f"choice {i}: a second choice for {' '.join(key)}")
        choices[key] = name
    tactics: dict[TacticRecordKey, str] = {}
    for i, entry in enumerate(doc.get("tactics") or []):
        try:
            key, tactic = _tactic_record(entry)
        except ValueError as e:
            raise fail(f"tactic {i}: {e}") from None
        if key in tactics:
            raise fail(f"tactic {i}: a second winner for block {list(key[0])}, {key[1]}, batch {key[2]}, {key[3]}")
        tactics[key] = tactic
    return TunedTable(gpu=gpu, path=path, choices=choices, tuned=dict(doc.get("tuned") or {}), tactics=tactics)


def tactic_entry(block, dtype: str, batch: str, mode: str, tactic: str,
                 median_ms: dict[str, float] | None = None) -> dict:
    """One ``"tactics"`` entry of a tuned file (the writer's side), checked as a reader checks it;
    ValueError naming the bad field."""
    entry = {"block": [int(c) for c in block], "dtype": dtype, "batch": batch, "mode": mode, "tactic": tactic}
    if median_ms is not None:
        entry["median_ms"] = {name: float(ms) for name, ms in median_ms.items()}
    _tactic_record(entry)
    return entry


def _tactic_record(entry) -> tuple[TacticRecordKey, str]:
    """(key, tactic) of one ``"tactics"`` entry; ValueError saying what is wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    missing = [f for f in ("block", "dtype", "batch", "mode", "tactic") if f not in entry]
    if missing:
        raise ValueError(f"lacks {missing}")
    block, dtype, batch, mode, tactic = (entry[f] for f in ("block", "dtype", "batch", "mode", "tactic"))
    if (not isinstance(block, list) or len(block) != BLOCK_SHAPE_FIELDS
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in block)):
        raise ValueError(f"block must be {BLOCK_SHAPE_FIELDS} positive ints (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, "
                         f"5x5, pool proj, k3, k5), got {block!r}")
    for what, value, allowed in (("dtype", dtype, TACTIC_DTYPES), ("batch", batch, TACTIC_BATCH_BUCKETS),
                                 ("mode", mode, TACTIC_MODES), ("tactic", tactic, TACTIC_NAMES)):
        if value not in allowed:
            raise ValueError(f"{what} {value!r} is not one of {list(allowed)}")
    if tactic not in TACTICS_BY_MODE[mode]:
        raise ValueError(f"tactic {tactic!r} cannot run {mode} (it takes {list(TACTICS_BY_MODE[mode])})")
    timings = entry.get("median_ms")
    if timings is not None:
        if not isinstance(timings, dict) or not all(
                name in TACTIC_NAMES and isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms > 0
                for name, ms in timings.items()):
            raise ValueError(f"median_ms must map tactic names to positive milliseconds, got {timings!r}")
        if tactic not in timings or min(timings, key=timings.get) != tactic:
            raise ValueError(f"tactic {tactic!r} is not the fastest in its own median_ms {timings}")
    return (tuple(block), dtype, batch, mode), tactic


def load_tuned_file(path: str | os.PathLike) -> TunedTable:
    """Read and validate one tuned-config file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TunedFileError(f"{path}: not JSON ({e})") from None
    return parse_tuned(doc, path)


def _search_dirs(extra: str | None, switch: str | None) -> tuple[Path, ...]:
    """Where tuned files are looked up, in order: $FUSED_INCEPTION_TUNED_DIR, then the shipped
    ``kernels/tuned/``; none when FUSED_INCEPTION_TUNED=0."""
    if switch == "0":
        return ()
    return ((Path(extra),) if extra else ()) + (SHIPPED_DIR,)


@functools.lru_cache(maxsize=None)
def _table_for(gpu: str, extra: str | None, switch: str | None) -> TunedTable | None:
    slug = gpu_slug(gpu)
    for d in _search_dirs(extra, switch):
        path = d / f"{slug}.json"
        if path.is_file():
            return load_tuned_file(path)
    return None


# (FUSED_INCEPTION_TUNED_DIR, FUSED_INCEPTION_TUNED) as read by the first lookup: every forward
# picks configs, and reading os.environ costs more than the rest of a pick
_env: tuple[str | None, str | None] | None = None


def tuned_table(gpu: str) -> TunedTable | None:
    """The tuned table for a GPU name (``torch.cuda.get_device_name``), or None when no file
    exists for it. The environment and the files are read once per process: set the variables
    before the first launch, or call ``clear_cache`` after changing them or writing a file."""
    global _env
    if _env is None:
        _env = (os.environ.get(ENV_DIR), os.environ.get(ENV_SWITCH))
    return _table_for(gpu, *_env)


def clear_cache() -> None:
    """Forget the environment and the tuned files read so far (a test, or a tuner that just wrote
    a file)."""
    global _env
    _env = None
    _table_for.cache_clear()


def tuned_tactic(gpu: str, block: tuple[int, ...], dtype: str, batch: str, mode: str) -> str | None:
    """The tactic recorded for a GPU name (``torch.cuda.get_device_name``), block shape, dtype name,
    batch bucket label and mode in that GPU's tuned file; None without a file or a record."""
    table = tuned_table(gpu)
    return table.tactic_for(block, dtype, batch, mode) if table is not None else None


def shipped_tables() -> list[TunedTable]:
    """Every tuned file checked in under kernels/tuned/ (compile-check compiles their choices as
    GoogLeNet launches them)."""
    return [load_tuned_file(p) for p in sorted(SHIPPED_DIR.glob("*.json"))]


# --- picking a config: the GPU's tuned choice, else the default (the first candidate)

def _pick(kernel: str, dtype_name: str, input_precision: str, gpu: str | None):
    name = candidate_names(kernel, dtype_name, input_precision)[0]
    if gpu is not None:
        table = tuned_table(gpu)
        if table is not None:
            name = table.choices.get((kernel, dtype_name, input_precision), name)
    return config_by_name(kernel, name)


def pick_pointwise_config(dtype_name: str, input_precision: str, gpu: str | None = None) -> PointwiseConfig:
    """The pointwise/pool config for a dtype ("float32", "float16", "bfloat16") and dot precision
    ("ieee" or "tf32"): the tuned choice for ``gpu`` (a device name, as
    ``torch.cuda.get_device_name`` gives it) when a tuned file for that GPU has one, else the
    default."""
    return _pick("pointwise_pool", dtype_name, input_precision, gpu)


def pick_reduce_conv_config(dtype_name: str, input_precision: str, gpu: str | None = None) -> ReduceConvConfig:
    """The reduce -> k x k config for a dtype and dot precision: tuned for ``gpu`` when a tuned
    file has it, else the default (see pick_pointwise_config)."""
    return _pick("reduce_conv", dtype_name, input_precision, gpu)
