"""The run of ``python -m fused_inception bench``: every case of the resolved settings in order,
each method measured (``timing.measure`` on a GPU, all of a case's methods in rounds by
``timing.measure_interleaved`` on the CPU), the report dict built (environment, settings,
notes, results, speedups) and rewritten as JSON after every method; and several reports merged."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from typing import Callable, Iterator, Sequence

import torch

from fused_inception.models.randomize import random_googlenet
from fused_inception.selection import force_tactic
from fused_inception.tools.bench.cases import (METHODS, SCOPES, STEM, Case, CaseSetup, block_input_shapes,
                                              fused_stem_module, scope_input_shape, scope_module, stem_is_fused,
                                              warm_cache)
from fused_inception.tools.bench.timing import error_result, measure, measure_interleaved, warn_check
from fused_inception.tools.environment import environment
from fused_inception.tools.files import write_json

SCHEMA = "fused_inception.bench/1"
CPU_LABEL = ("CPU: the fused blocks run their CPU tactics (by the committed measurement: the aten tactic in "
             "inference, aten-bn in training), not the Triton kernels")


class _Progress:
    """tqdm when installed, else one printed line per step."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.n, self.enabled = total, 0, enabled
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="meas", dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def step(self, text: str) -> None:
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            print(f"[{self.n}/{self.total}] {text}", file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def interpreter_off() -> Iterator[bool]:
    """Keep the Triton interpreter off for the duration, so that CPU calls run the CPU's tactics
    (``selection`` reads TRITON_INTERPRET at call time; under the interpreter a CPU block runs the
    Triton kernels, whose interpreted timings mean nothing); yields whether it had been on."""
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "0"
    try:
        yield old == "1"
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


STEM_NOT_FUSED = ("stem: its fused methods are not timed: fuse() fuses a GoogLeNet's stem units in the torchvision "
                  "variant only (the paper variant's stem has LRN and no BN), so this network's fused stem is "
                  "the eager one")
STEM_NOT_COMPILED_FUSED = ("stem: fused methods under torch.compile are not timed: a fused stem unit runs its original "
                           "modules under torch.compile, so they would time compile again")
STEM_TRAINING_MODULES = ("stem: in the train and finetune modes its fused methods time the units' original modules "
                         "(a call autograd records runs them: fused_inception/stem.py)")


def case_methods(scope: str, methods: list[str], stem_fused: bool) -> list[str]:
    """The methods a case of ``scope`` times, eager first (its output is the reference of the
    inference check). The stem (``stem_fused``: whether fuse() fuses this variant's stem) times no
    fused method where it is not fused (``STEM_NOT_FUSED``) and none under torch.compile
    (``STEM_NOT_COMPILED_FUSED``)."""
    ordered = sorted(methods, key=lambda m: m != "eager")
    if scope != STEM:
        return ordered
    return [m for m in ordered if not METHODS[m].fused or (stem_fused and METHODS[m].wrap != "compile")]


def _stem_notes(methods: list[str], modes: list[str], stem_fused: bool) -> list[str]:
    """The notes that say why a stem case left out some of ``methods`` (case_methods), or what
    its fused methods time in the training ``modes``."""
    fused = [m for m in methods if METHODS[m].fused]
    if not fused:
        return []
    if not stem_fused:
        return [STEM_NOT_FUSED]
    notes = [STEM_NOT_COMPILED_FUSED] if any(METHODS[m].wrap == "compile" for m in fused) else []
    if any(mode != "infer" for mode in modes) and any(METHODS[m].wrap != "compile" for m in fused):
        notes.append(STEM_TRAINING_MODULES)
    return notes


def _order(settings: dict) -> list[Case]:
    # net first, then the stem and the blocks: a run cut short by --max-seconds keeps the headline numbers
    scopes = sorted(settings["scopes"], key=lambda s: (s != "net", SCOPES.index(s)))
    return [Case(s, m, d, b) for m in settings["modes"] for d in settings["dtypes"] for b in settings["batches"]
            for s in scopes]


def run_bench(settings: dict, progress_enabled: bool = True, json_path: str | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    """Run every case of ``settings`` (see ``bench.resolve_settings``); returns the report dict. With
    ``json_path`` the report is rewritten there after every case (a run cut short keeps its data)."""

    device = settings["device"]
    cuda = device == "cuda"
    saved = (torch.get_num_threads(), torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    try:
        if cuda:
            torch.backends.cudnn.benchmark = settings["cudnn_benchmark"]
            torch.backends.cudnn.allow_tf32 = settings["tf32"]
            torch.backends.cuda.matmul.allow_tf32 = settings["tf32"]
        if settings.get("threads"):
            torch.set_num_threads(settings["threads"])
        forced = settings.get("force_tactic")
        # thread-local, and only FusedInception calls consult it: the baselines run as they are
        with force_tactic(forced) if forced else contextlib.nullcontext():
            return _run_cases(settings, progress_enabled, json_path, log)
    finally:
        torch.set_num_threads(saved[0])
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved[1:]


def _run_cases(settings: dict, progress_enabled: bool, json_path: str | None,
               log: Callable[[str], None] | None) -> dict:
    device = settings["device"]
    cuda = device == "cuda"
    gen = torch.Generator().manual_seed(settings["seed"])
    base = random_googlenet(settings["variant"], gen, settings["size"], aux_logits=True, dtype=torch.float32)
    shapes = block_input_shapes(base, settings["size"])
    num_classes = base.fc.out_features
    cases = _order(settings)
    l2_bytes = torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size if cuda else None
    report = {
        "schema": SCHEMA,
        "environment": environment(device),
        "settings": {k: v for k, v in settings.items() if k != "notes"},
        "label": CPU_LABEL if not cuda else "GPU: Triton kernels",
        "notes": list(settings["notes"]) + _standard_notes(settings),
        "block_input_shapes": {k: list(v) for k, v in shapes.items()},
        "cases": [],
    }
    fused_stem = fused_stem_module(base)
    stem_fused = stem_is_fused(fused_stem)
    progress = _Progress(sum(len(case_methods(c.scope, settings["methods"], stem_fused)) for c in cases),
                         progress_enabled)
    say = log or progress.write
    t_start = time.perf_counter()
    budget = settings.get("max_seconds")
    try:
        for case in cases:
            in_shape = scope_input_shape(case.scope, settings["size"], shapes)
            module = scope_module(base, case.scope)
            setup = CaseSetup(case, module, in_shape, device, settings["rotate_mb"], gen, num_classes,
                              fused_base=fused_stem if case.scope == STEM else None)
            entry = {"scope": case.scope, "mode": case.mode, "dtype": case.dtype, "batch": case.batch,
                     "input_shape": [case.batch, *in_shape], "n_inputs": len(setup.inputs[False]),
                     "rotated_mb": round(setup.rotated_bytes / 2**20, 2),
                     "warm_cache": warm_cache(setup.rotated_bytes, l2_bytes), "results": {}}
            report["cases"].append(entry)  # filled method by method, rewritten after each
            reference_out = None
            ordered = case_methods(case.scope, settings["methods"], stem_fused)
            if case.scope == STEM:
                notes = _stem_notes(settings["methods"], settings["modes"], stem_fused)
                report["notes"] += [n for n in notes if n not in report["notes"]]
            # the CPU times a case's methods together, in rounds (timing.measure_interleaved)
            interleaved = None
            if not cuda and (budget is None or time.perf_counter() - t_start <= budget):
                interleaved = measure_interleaved(setup, ordered, settings)
                for name, res in interleaved.items():
                    if "error" in res:
                        say(f"warning: {case.key} {name}: {res['error'][:300]}")
            for name in ordered:
                if interleaved is not None:
                    res = interleaved[name]
                elif budget is not None and time.perf_counter() - t_start > budget:
                    res = {"skipped": f"time budget of {budget:.0f} s spent"}
                else:
                    try:
                        res = measure(setup, name, settings, reference_out)
                    except Exception as err:
                        res = error_result(err)
                        say(f"warning: {case.key} {name}: {res['error'][:300]}")
                        torch.cuda.empty_cache()
                if name == "eager" and "output" in res:
                    reference_out = res.pop("output")
                res.pop("output", None)
                entry["results"][name] = res
                progress.step(f"{case.key} {name}: " + (f"{res['median_ms']:.3f} ms" if "median_ms" in res
                                                          else "skipped" if "skipped" in res else "no timing"))
                warn_check(entry, name, say, tf32=cuda and settings["tf32"])
                entry["speedup"] = speedups(entry["results"])
                report["seconds"] = round(time.perf_counter() - t_start, 1)
                if json_path:  # after every method: a run killed mid-case keeps the methods it timed
                    write_json(report, json_path)
            del setup
            if cuda:
                torch.cuda.empty_cache()
    finally:
        progress.close()
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    return report


def _standard_notes(settings: dict) -> list[str]:
    notes = []
    if settings["device"] == "cpu":
        notes.append(CPU_LABEL + f"; timed with time.perf_counter on {settings.get('threads') or 'all'} "
                     "thread(s), a case's methods in rounds of one call each (drift hits all alike); "
                     "peak memory n/a (PyTorch keeps no CPU allocator statistics)")
    else:
        notes.append("CUDA events around each call; peak memory = torch.cuda.max_memory_allocated during "
                     "one call beyond what was allocated before it (CUDA-graph methods: during capture)")
        notes.append(f"fp32 runs with TF32 {'on' if settings['tf32'] else 'off'} for cuDNN, cuBLAS and "
                     "the fused kernels (torch.backends.cudnn.allow_tf32)")
    notes.append("which tactic each fused block ran, and why, is in the tactics table (per case and fused "
                 "method; the JSON has it per block)")
    if settings.get("force_tactic"):
        notes.append(f"every fused block forced to the {settings['force_tactic']} tactic (--force-tactic), "
                     "not the one the library would select")
    if "train" in settings["modes"]:
        notes.append("train: BatchNorm in training mode (tactic mode bn-training); finetune (BN frozen): "
                     "frozen-bn-training; an untuned GPU runs aten-bn in both (tactics.GPU_TRAINING_DEFAULT)")
    if any(METHODS[m].wrap == "cudagraph" for m in settings["methods"]):
        notes.append("CUDA-graph methods copy each input (and target) into the graph's static input "
                     "before the replay; the copy is timed")
    notes.append("half precision = the model converted to that dtype (no autocast, no master weights)")
    return notes


def empty_report() -> dict:
    """A report with no case: the environment of this machine (for a merge of no bench file, e.g.
    gpu_check.sh's report before any bench step finished)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"schema": SCHEMA, "environment": environment(device), "settings": {},
            "label": "GPU: Triton kernels" if device == "cuda" else CPU_LABEL, "notes": [], "cases": [],
            "seconds": 0}


def speedups(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """{fused method: {baseline method: baseline median / fused median}} over the timed methods."""
    timed = {m: r["median_ms"] for m, r in results.items() if "median_ms" in r}
    out: dict[str, dict[str, float]] = {}
    for f, tf in timed.items():
        if not METHODS[f].fused:
            continue
        out[f] = {b: round(tb / tf, 4) for b, tb in timed.items() if not METHODS[b].fused}
    return out


def merge_reports(reports: Sequence[dict]) -> dict:
    """One report from several (e.g. gpu_check.sh's passes): cases with the same scope, mode, dtype
    and batch get the union of their methods' results (a later timing of a method replaces an
    earlier error or skip); speedups are recomputed."""
    if not reports:
        raise ValueError("nothing to merge")
    merged = copy.deepcopy(reports[0])
    merged["merged_from"] = [r.get("environment", {}).get("command") for r in reports]
    merged["notes"] = list(dict.fromkeys(n for r in reports for n in r.get("notes", [])
                                         if not n.startswith("no fused method or no baseline")))
    merged["settings_all"] = [r.get("settings") for r in reports]
    index = {(c["scope"], c["mode"], c["dtype"], c["batch"]): c for c in merged["cases"]}
    for r in reports[1:]:
        for c in r["cases"]:
            key = (c["scope"], c["mode"], c["dtype"], c["batch"])
            if key not in index:
                index[key] = copy.deepcopy(c)
                merged["cases"].append(index[key])
                continue
            target = index[key]["results"]
            for name, res in c["results"].items():
                if name not in target or "median_ms" not in target[name] or "median_ms" in res:
                    target[name] = res
    for c in merged["cases"]:
        c["speedup"] = speedups(c["results"])
    merged["seconds"] = round(sum(r.get("seconds", 0) for r in reports), 1)
    return merged

