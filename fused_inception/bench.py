"""``python -m fused_inception bench``: eager, channels_last, torch.compile, CUDA graph and fused
GoogLeNet side by side, per Inception block (3a..5b) and for the whole network.

Interface for the CLI dispatcher: ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args) -> int``.

What is timed (one *case* = scope x mode x dtype x batch; every method of a case gets the same
weights and the same preallocated inputs):

* scope: one Inception block alone (its input shape is the one it sees in the network at
  ``--size``), or the whole network (``net``);
* mode: ``infer`` (eval, no grad); ``train`` (train mode: forward + backward + SGD step; the whole
  network with its aux heads and ``GoogLeNetLoss``, a block with a fixed upstream gradient);
  ``finetune`` (the same step with BatchNorm frozen, i.e. eval mode). In ``train`` a
  ``FusedInception`` with BatchNorm runs its unfused modules (batch statistics need every conv
  output whole), so fused == eager there by design; ``finetune`` is where the fused backward runs;
* methods: ``eager`` (NCHW), ``eager-cl`` (channels_last), ``compile`` (torch.compile, mode
  ``max-autotune`` on a GPU), ``cudagraph`` (eager replayed from a CUDA graph; the input is copied
  into the graph's static input first), ``fused`` / ``fused-cl`` (``fuse(model)``, NCHW /
  channels_last input), ``fused-cudagraph``, ``fused-compile``.

Timing: on a GPU, CUDA events around every call after warm-up; on the CPU, ``time.perf_counter``.
Each call takes the next of several preallocated inputs (on a GPU, enough of them to exceed the L2
cache), so a warm cache is not what is measured. Reported: median ms with p20-p80, img/s
(batch / median), the fused methods' speedups against each baseline, and peak memory of one call
beyond what was resident before it (GPU: ``torch.cuda.max_memory_allocated``; CUDA-graph methods:
during capture; CPU: n/a, PyTorch keeps no CPU allocator statistics). Inference outputs of every method are checked against eager's (a sanity check; the
parity command is the numerical evidence).

On the CPU the fused blocks take their PyTorch fallback path (this command keeps the Triton
interpreter off while it runs): those rows are labelled "CPU, PyTorch fallback path: not a kernel
performance figure". torch.compile is slow to compile on the CPU and is left out there unless
``--compile`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from .spec import GOOGLENET_BLOCKS

DESCRIPTION = (
    "Time eager (NCHW, channels_last), torch.compile, CUDA graph and fused GoogLeNet side by side, per "
    "Inception block and whole network, inference and training step, per dtype and batch; img/s, median ms "
    "with p20-p80, speedups, peak memory; --json, --markdown, --plot. On the CPU: small sizes of the PyTorch "
    "fallback path (not kernel performance figures)."
)

SCHEMA = "fused_inception.bench/1"
BLOCKS = tuple(GOOGLENET_BLOCKS)
SCOPES = (*BLOCKS, "net")
MODES = ("infer", "train", "finetune")
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CPU_LABEL = "CPU, PyTorch fallback path: not a kernel performance figure"


@dataclass(frozen=True)
class Method:
    fused: bool
    channels_last: bool
    wrap: str | None  # None, "compile" or "cudagraph"


METHODS: dict[str, Method] = {
    "eager": Method(False, False, None),
    "eager-cl": Method(False, True, None),
    "compile": Method(False, False, "compile"),
    "cudagraph": Method(False, False, "cudagraph"),
    "fused": Method(True, False, None),
    "fused-cl": Method(True, True, None),
    "fused-cudagraph": Method(True, False, "cudagraph"),
    "fused-compile": Method(True, False, "compile"),
}
GPU_METHODS = ("eager", "eager-cl", "compile", "cudagraph", "fused", "fused-cl", "fused-cudagraph")
CPU_METHODS = ("eager", "eager-cl", "fused", "fused-cl")
# (size, batches, dtypes, warmup, repeat, rep_ms, rotate_mb, compile mode)
GPU_DEFAULTS = dict(size=224, batch="1,32,256", dtypes="fp32,fp16,bf16", warmup=10, repeat=10, rep_ms=100.0,
                    rotate_mb=192.0, compile_mode="max-autotune", threads=None)
# one CPU thread: with two, a busy machine (another process on a core) stalls every op at OpenMP
# barriers (measured here: 12 ms -> 1100 ms per GoogLeNet forward)
CPU_DEFAULTS = dict(size=64, batch="1,2", dtypes="fp32", warmup=2, repeat=5, rep_ms=300.0, rotate_mb=0.0,
                    compile_mode="default", threads=1)
MAX_REPEAT = 1000
MAX_INPUTS = 512


# ------------------------------------------------------------------ environment

def _git_commit() -> str | None:
    """HEAD of the checkout this package runs from (with -dirty), else $FUSED_INCEPTION_GIT_COMMIT
    (for a copy of the tree without .git, e.g. on a device machine), else None."""
    root = Path(__file__).resolve().parent.parent
    fallback = os.environ.get("FUSED_INCEPTION_GIT_COMMIT") or None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return fallback
    if not commit:
        return fallback
    return commit + ("-dirty" if dirty else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def environment(device: str) -> dict:
    """Where and with what a result was produced (device, versions, commit, date, command line)."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    env = {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name,
                                                     *getattr(sys, "orig_argv", sys.argv)[1:]]),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET"),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        env.update({
            "driver": _nvidia_driver(),
            "compute_capability": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count,
            "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        })
    return env


def slug(text: str) -> str:
    """A file-name-safe lower-case slug ("NVIDIA H200" -> "nvidia-h200")."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-") or "unknown"


# ------------------------------------------------------------------ progress

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


# ------------------------------------------------------------------ timing

def _stats(times_ms: Sequence[float]) -> dict:
    t = sorted(times_ms)

    def q(p: float) -> float:
        # linear interpolation between closest ranks
        if len(t) == 1:
            return t[0]
        pos = p * (len(t) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(t) - 1)
        return t[lo] + (t[hi] - t[lo]) * (pos - lo)

    return {"median_ms": q(0.5), "p20_ms": q(0.2), "p80_ms": q(0.8), "min_ms": t[0], "max_ms": t[-1],
            "mean_ms": sum(t) / len(t), "n": len(t)}


def time_cpu(fn: Callable[[int], object], warmup: int, repeat: int, rep_ms: float) -> list[float]:
    """Milliseconds of ``fn(i)`` calls after ``warmup`` calls: at least ``repeat`` calls and until
    ``rep_ms`` ms were measured (at most MAX_REPEAT calls)."""
    for i in range(warmup):
        fn(i)
    times: list[float] = []
    i = warmup
    while len(times) < repeat or (sum(times) < rep_ms and len(times) < MAX_REPEAT):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
        i += 1
    return times


def time_cuda(fn: Callable[[int], object], warmup: int, repeat: int, rep_ms: float) -> list[float]:
    """Milliseconds of ``fn(i)`` calls by CUDA events around each call, after ``warmup`` calls; the
    count is sized from the warm-up to measure about ``rep_ms`` ms (at least ``repeat`` calls)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for i in range(warmup):
        fn(i)
    end.record()
    torch.cuda.synchronize()
    est = max(start.elapsed_time(end) / max(warmup, 1), 1e-3)
    n = int(min(MAX_REPEAT, max(repeat, math.ceil(rep_ms / est))))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for k in range(n):
        starts[k].record()
        fn(warmup + k)
        ends[k].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


# ------------------------------------------------------------------ cases

@dataclass(frozen=True)
class Case:
    scope: str
    mode: str
    dtype: str
    batch: int

    @property
    def key(self) -> str:
        return f"{self.scope}/{self.mode}/{self.dtype}/b{self.batch}"


class CaseSetup:
    """The shared pieces of one case: the base module, inputs in both layouts, targets/gradients."""

    def __init__(self, case: Case, base: nn.Module, in_shape: tuple[int, ...], device: str, rotate_mb: float,
                 gen: torch.Generator, num_classes: int) -> None:
        self.case, self.base, self.device = case, base, device
        dtype = DTYPES[case.dtype]
        shape = (case.batch, *in_shape)
        nbytes = math.prod(shape) * torch.finfo(dtype).bits // 8
        n = 2 if rotate_mb <= 0 else int(min(MAX_INPUTS, max(2, math.ceil(rotate_mb * 2**20 / nbytes))))
        # drawn on the device (hundreds of inputs per case on a GPU), seeded from ``gen``
        dev_gen = torch.Generator(device=device)
        dev_gen.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        xs = [torch.randn(shape, generator=dev_gen, device=device, dtype=dtype) for _ in range(n)]
        self.inputs = {False: xs, True: [x.contiguous(memory_format=torch.channels_last) for x in xs]}
        self.targets = [torch.randint(0, num_classes, (case.batch,), generator=dev_gen, device=device)
                        for _ in range(n)]
        self.grad_out = None  # a block's upstream gradient, made once its output shape is known
        self.gen = gen


def _build_module(setup: CaseSetup, method: Method) -> nn.Module:
    from .patching import fuse

    dtype = DTYPES[setup.case.dtype]
    module = copy.deepcopy(setup.base)
    if method.fused:
        module = fuse(module, inplace=True)
    fmt = torch.channels_last if method.channels_last else torch.preserve_format
    module = module.to(device=setup.device, dtype=dtype, memory_format=fmt)
    module.train(setup.case.mode == "train")
    for p in module.parameters():
        p.requires_grad_(setup.case.mode != "infer")
    return module


def _make_step(setup: CaseSetup, method: Method, module: nn.Module, compile_mode: str):
    """``step(x, target) -> output`` for the case's mode, and the module that runs it."""
    from .models import GoogLeNetLoss

    runner: Callable = module
    if method.wrap == "compile":
        torch._dynamo.reset()  # fresh caches per case: no recompile limit, no stale guards
        runner = torch.compile(module, mode=compile_mode, dynamic=False)
    if setup.case.mode == "infer":
        def step(x, target):
            with torch.no_grad():
                return runner(x)
        return step
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9)
    loss_fn = GoogLeNetLoss()
    is_net = setup.case.scope == "net"

    def step(x, target):
        optimizer.zero_grad(set_to_none=True)
        out = runner(x)
        if is_net:
            loss_fn(out, target).backward()
        else:
            if setup.grad_out is None or setup.grad_out.shape != out.shape:
                setup.grad_out = torch.randn(out.shape, generator=setup.gen).to(device=out.device, dtype=out.dtype)
                setup.grad_out = setup.grad_out.contiguous(memory_format=_memory_format_of(out))
            out.backward(setup.grad_out)
        optimizer.step()
        return out
    return step


def _memory_format_of(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class _Graphed:
    """``step`` captured into a CUDA graph; each call copies its input into the static input first."""

    def __init__(self, step, xs: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        self.xs, self.targets = xs, targets
        self.static_x = xs[0].clone()
        self.static_t = targets[0].clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(self.static_x, self.static_t)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = step(self.static_x, self.static_t)
        torch.cuda.synchronize()
        self.capture_peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20

    def __call__(self, i: int):
        k = i % len(self.xs)
        self.static_x.copy_(self.xs[k])
        self.static_t.copy_(self.targets[k])
        self.graph.replay()
        return self.static_out


def _first_output(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def _rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    o, r = out.detach().double().cpu(), ref.detach().double().cpu()
    norm = float(torch.linalg.vector_norm(r))
    diff = float(torch.linalg.vector_norm(torch.nan_to_num(o - r, nan=math.inf)))
    return diff / norm if norm > 0 else diff


def prepare_call(setup: CaseSetup, name: str, compile_mode: str) -> tuple[Callable[[int], object], dict]:
    """``fn(i)``: one call of method ``name`` on the case's i-th input (cyclically), built and
    warmed up once (torch.compile and Triton compile here, CUDA graphs are captured here); and
    facts gathered while building it (``setup_s``; ``peak_mem_mb`` for CUDA-graph methods)."""
    method = METHODS[name]
    module = _build_module(setup, method)
    info: dict = {}
    if method.fused:
        from .module import FusedInception

        info["fused_blocks"] = sum(isinstance(m, FusedInception) for m in module.modules())
        if info["fused_blocks"] == 0:
            raise RuntimeError("fuse() swapped no Inception block")
    step = _make_step(setup, method, module, compile_mode)
    xs = setup.inputs[method.channels_last]
    targets = setup.targets
    t0 = time.perf_counter()
    if method.wrap == "cudagraph":
        graphed = _Graphed(step, xs, targets)
        fn: Callable[[int], object] = graphed
        info["peak_mem_mb"] = round(graphed.capture_peak_mb, 2)
        info["peak_mem_note"] = "during capture (graph pool)"
    else:
        def fn(i: int):
            k = i % len(xs)
            return step(xs[k], targets[k])
        fn(0)
    if setup.device == "cuda":
        torch.cuda.synchronize()
    info["setup_s"] = round(time.perf_counter() - t0, 3)
    return fn, info


def measure(setup: CaseSetup, name: str, settings: dict, reference_out: torch.Tensor | None) -> dict:
    """Time one method on one case; returns its result dict (times, stats, memory, check)."""
    cuda = setup.device == "cuda"
    fn, result = prepare_call(setup, name, settings["compile_mode"])
    if setup.case.mode == "infer":
        out = _first_output(fn(0))
        if cuda:
            torch.cuda.synchronize()
        if reference_out is None:
            result["output"] = out.detach().clone()
        else:
            result["rel_err_vs_eager"] = _rel_error(out, reference_out)
    timer = time_cuda if cuda else time_cpu
    times = timer(fn, max(1, settings["warmup"]) if cuda else settings["warmup"], settings["repeat"],
                  settings["rep_ms"])
    if "peak_mem_mb" not in result:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn(0)
            torch.cuda.synchronize()
            result["peak_mem_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 2)
        else:
            result["peak_mem_mb"] = None  # the CPU allocator keeps no statistics: n/a
    result["times_ms"] = [round(t, 5) for t in times]
    result.update({k: round(v, 5) if isinstance(v, float) else v for k, v in _stats(times).items()})
    result["img_per_s"] = round(setup.case.batch / (result["median_ms"] / 1e3), 2)
    return result


def speedups(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """{fused method: {baseline method: baseline median / fused median}} over the timed methods."""
    timed = {m: r["median_ms"] for m, r in results.items() if "median_ms" in r}
    out: dict[str, dict[str, float]] = {}
    for f, tf in timed.items():
        if not METHODS[f].fused:
            continue
        out[f] = {b: round(tb / tf, 4) for b, tb in timed.items() if not METHODS[b].fused}
    return out


def block_input_shapes(model: nn.Module, size: int) -> dict[str, tuple[int, ...]]:
    """(C, H, W) of each Inception block's input in ``model`` at a ``size`` x ``size`` input."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in BLOCKS:
        def hook(_m, inputs, name=name):
            shapes[name] = tuple(inputs[0].shape[1:])
        handles.append(model.get_submodule(f"inception{name}").register_forward_pre_hook(hook))
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, 3, size, size, dtype=p.dtype, device=p.device))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return shapes


@contextlib.contextmanager
def pytorch_fallback_on_cpu() -> Iterator[bool]:
    """Keep the fused blocks on their PyTorch path for CPU tensors (``ops.uses_triton`` reads
    TRITON_INTERPRET at call time); yields whether the interpreter had been on."""
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "0"
    try:
        yield old == "1"
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


# ------------------------------------------------------------------ the run

def _csv(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def resolve_settings(args: argparse.Namespace) -> dict:
    """Command-line arguments with the device's defaults filled in (ValueError on bad values)."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but CUDA is not available")
    d = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS

    def pick(name: str):
        value = getattr(args, name, None)
        return d[name] if value is None else value

    scopes_arg = args.scopes or "all"
    scopes: list[str] = []
    for s in _csv(scopes_arg):
        scopes += {"all": list(SCOPES), "blocks": list(BLOCKS)}.get(s, [s])
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise ValueError(f"unknown scope(s) {bad}; expected some of {list(SCOPES)}, 'blocks' or 'all'")
    modes = _csv(args.modes or "infer,train")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; expected some of {list(MODES)}")
    dtypes = _csv(pick("dtypes"))
    bad = [x for x in dtypes if x not in DTYPES]
    if bad:
        raise ValueError(f"unknown dtype(s) {bad}; expected some of {list(DTYPES)}")
    batches = [int(b) for b in _csv(pick("batch"))]
    if not batches or min(batches) < 1:
        raise ValueError("--batch needs positive integers")
    notes: list[str] = []
    if args.methods:
        methods = _csv(args.methods)
    else:
        methods = list(GPU_METHODS if device == "cuda" else CPU_METHODS)
        if device == "cpu":
            if getattr(args, "compile", False):
                methods.insert(2, "compile")
            else:
                notes.append("torch.compile left out on the CPU (slow to compile there); --compile includes it")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; expected some of {list(METHODS)}")
    if device == "cpu":
        graphs = [m for m in methods if METHODS[m].wrap == "cudagraph"]
        if graphs:
            notes.append(f"{', '.join(graphs)} need a GPU: left out")
            methods = [m for m in methods if m not in graphs]
        if any(x != "fp32" for x in dtypes):
            notes.append("half precision on the CPU: PyTorch's CPU kernels, slow and not representative")
    if not any(METHODS[m].fused for m in methods) or not any(not METHODS[m].fused for m in methods):
        notes.append("no fused method or no baseline among --methods: no speedups")
    threads = pick("threads")
    if threads is not None and int(threads) < 1:
        raise ValueError("--threads must be >= 1")
    size = int(pick("size"))
    if size < 32:
        raise ValueError("--size must be at least 32 (GoogLeNet's five stride-2 stages)")
    return {
        "device": device, "variant": args.variant, "size": size, "batches": batches, "dtypes": dtypes,
        "scopes": scopes, "modes": modes, "methods": methods,
        "warmup": int(pick("warmup")), "repeat": int(pick("repeat")), "rep_ms": float(pick("rep_ms")),
        "rotate_mb": float(pick("rotate_mb")), "compile_mode": pick("compile_mode"),
        "seed": args.seed, "max_seconds": args.max_seconds, "tf32": bool(args.tf32),
        "cudnn_benchmark": bool(args.cudnn_benchmark), "notes": notes,
        "threads": None if threads is None else int(threads),
    }


def _order(settings: dict) -> list[Case]:
    # net first, then blocks: a run cut short by --max-seconds keeps the headline numbers
    scopes = sorted(settings["scopes"], key=lambda s: (s != "net", SCOPES.index(s)))
    return [Case(s, m, d, b) for m in settings["modes"] for d in settings["dtypes"] for b in settings["batches"]
            for s in scopes]


def run_bench(settings: dict, progress_enabled: bool = True, json_path: str | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    """Run every case of ``settings`` (see resolve_settings); returns the report dict. With
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
        return _run_cases(settings, progress_enabled, json_path, log)
    finally:
        torch.set_num_threads(saved[0])
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved[1:]


def _run_cases(settings: dict, progress_enabled: bool, json_path: str | None,
               log: Callable[[str], None] | None) -> dict:
    from .parity_report import random_googlenet

    device = settings["device"]
    cuda = device == "cuda"
    gen = torch.Generator().manual_seed(settings["seed"])
    base = random_googlenet(settings["variant"], gen, settings["size"], aux_logits=True, dtype=torch.float32)
    shapes = block_input_shapes(base, settings["size"])
    num_classes = base.fc.out_features
    cases = _order(settings)
    report = {
        "schema": SCHEMA,
        "environment": environment(device),
        "settings": {k: v for k, v in settings.items() if k != "notes"},
        "label": CPU_LABEL if not cuda else "GPU: Triton kernels",
        "notes": list(settings["notes"]) + _standard_notes(settings),
        "block_input_shapes": {k: list(v) for k, v in shapes.items()},
        "cases": [],
    }
    progress = _Progress(len(cases) * len(settings["methods"]), progress_enabled)
    say = log or progress.write
    t_start = time.perf_counter()
    budget = settings.get("max_seconds")
    try:
        for case in cases:
            in_shape = (3, settings["size"], settings["size"]) if case.scope == "net" else shapes[case.scope]
            module = base if case.scope == "net" else base.get_submodule(f"inception{case.scope}")
            setup = CaseSetup(case, module, in_shape, device, settings["rotate_mb"], gen, num_classes)
            entry = {"scope": case.scope, "mode": case.mode, "dtype": case.dtype, "batch": case.batch,
                     "input_shape": [case.batch, *in_shape], "n_inputs": len(setup.inputs[False]),
                     "results": {}}
            reference_out = None
            # eager first: its output is the reference of the inference check
            ordered = sorted(settings["methods"], key=lambda m: m != "eager")
            for name in ordered:
                if budget is not None and time.perf_counter() - t_start > budget:
                    entry["results"][name] = {"skipped": f"time budget of {budget:.0f} s spent"}
                    progress.step(f"{case.key} {name}: skipped")
                    continue
                try:
                    res = measure(setup, name, settings, reference_out)
                except Exception as err:  # a method that cannot run is a result, not the end of the run
                    res = {"error": f"{type(err).__name__}: {err}"[:2000]}
                    say(f"warning: {case.key} {name}: {res['error'][:300]}")
                    if cuda:
                        torch.cuda.empty_cache()
                if name == "eager" and "output" in res:
                    reference_out = res.pop("output")
                res.pop("output", None)
                entry["results"][name] = res
                progress.step(f"{case.key} {name}: " + (f"{res['median_ms']:.3f} ms" if "median_ms" in res
                                                          else "no timing"))
            entry["speedup"] = speedups(entry["results"])
            _warn_check(entry, say, tf32=cuda and settings["tf32"])
            report["cases"].append(entry)
            del setup
            if cuda:
                torch.cuda.empty_cache()
            report["seconds"] = round(time.perf_counter() - t_start, 1)
            if json_path:
                write_json(report, json_path)
    finally:
        progress.close()
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    return report


# Sanity bounds on a method's inference output against eager's (relative norm): they catch a wrong
# or garbage output (order 1), not precision (that is the parity command's job). One block; the
# whole network's rounding error grows with depth (measured on the CPU: fp16 logits 3e-2 off
# float64, so two fp16 implementations differ by about 4e-2; bf16 has 8x fp16's unit roundoff).
CHECK_BOUNDS = {"fp32": (1e-4, 1e-3), "tf32": (1e-2, 0.2), "fp16": (1e-2, 0.2), "bf16": (5e-2, 0.7)}


def check_bound(dtype: str, scope: str, tf32: bool) -> float:
    """The sanity bound of ``_warn_check`` for a case (``tf32``: fp32 on a GPU with TF32 allowed)."""
    key = "tf32" if dtype == "fp32" and tf32 else dtype
    block, net = CHECK_BOUNDS[key]
    return net if scope == "net" else block


def _warn_check(entry: dict, say: Callable[[str], None], tf32: bool) -> None:
    tol = check_bound(entry["dtype"], entry["scope"], tf32)
    entry["check_bound"] = tol
    for name, res in entry["results"].items():
        err = res.get("rel_err_vs_eager")
        if err is not None and not err <= tol:
            res["check"] = "MISMATCH"
            say(f"warning: {entry['scope']}/{entry['dtype']}/b{entry['batch']} {name}: output differs from "
                f"eager by {err:.2e} (relative; sanity bound {tol:.0e})")
        elif err is not None:
            res["check"] = "ok"


def _standard_notes(settings: dict) -> list[str]:
    notes = []
    if settings["device"] == "cpu":
        notes.append(CPU_LABEL + f"; timed with time.perf_counter on {settings.get('threads') or 'all'} "
                     "thread(s); peak memory n/a (PyTorch keeps no CPU allocator statistics)")
    else:
        notes.append("CUDA events around each call; peak memory = torch.cuda.max_memory_allocated during "
                     "one call beyond what was allocated before it (CUDA-graph methods: during capture)")
        notes.append(f"fp32 runs with TF32 {'on' if settings['tf32'] else 'off'} for cuDNN, cuBLAS and "
                     "the fused kernels (torch.backends.cudnn.allow_tf32)")
    if "train" in settings["modes"]:
        notes.append("train: BatchNorm in training mode; FusedInception then runs its unfused modules "
                     "(batch statistics), so fused == eager there by design. finetune (BN frozen) runs the "
                     "fused forward and backward")
    if any(METHODS[m].wrap == "cudagraph" for m in settings["methods"]):
        notes.append("CUDA-graph methods copy each input (and target) into the graph's static input "
                     "before the replay; the copy is timed")
    notes.append("half precision = the model converted to that dtype (no autocast, no master weights)")
    return notes


def write_json(report: dict, path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(p)


# ------------------------------------------------------------------ merging several runs

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


# ------------------------------------------------------------------ formatting

def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 100 else f"{x:.1f}"


def _cell_time(res: dict) -> str:
    if "median_ms" in res:
        return _ms(res["median_ms"])
    if "error" in res:
        return "error"
    return "skipped"


def _sorted_cases(report: dict) -> list[dict]:
    return sorted(report["cases"], key=lambda c: (MODES.index(c["mode"]), list(DTYPES).index(c["dtype"]),
                                                  SCOPES.index(c["scope"]) if c["scope"] in SCOPES else 99,
                                                  c["batch"]))


def _methods_in(report: dict) -> list[str]:
    seen = {m for c in report["cases"] for m in c["results"]}
    return [m for m in METHODS if m in seen]


def long_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """One row per case and method: median, p20-p80, img/s, peak MB, time / best fused time."""
    header = ["scope", "mode", "dtype", "batch", "method", "median ms", "p20-p80 ms", "img/s", "peak MB",
              "t/t(best fused)", "check"]
    rows = []
    for c in _sorted_cases(report):
        fused_times = [r["median_ms"] for m, r in c["results"].items() if METHODS[m].fused and "median_ms" in r]
        best = min(fused_times) if fused_times else None
        for m in [m for m in METHODS if m in c["results"]]:
            r = c["results"][m]
            if "median_ms" in r:
                mem = r.get("peak_mem_mb")
                rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), m, _ms(r["median_ms"]),
                             f"{_ms(r['p20_ms'])}-{_ms(r['p80_ms'])}", f"{r['img_per_s']:.1f}",
                             "n/a" if mem is None else f"{mem:.1f}",
                             f"{r['median_ms'] / best:.2f}" if best else "-", r.get("check", "")])
            else:
                why = r.get("error") or r.get("skipped") or "?"
                rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), m, "-", "-", "-", "-", "-",
                             ("error: " if "error" in r else "skipped: ") + why[:60]])
    return header, rows


def speedup_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """One row per case and fused method: baseline median / fused median for each baseline."""
    baselines = [m for m in _methods_in(report) if not METHODS[m].fused]
    header = ["scope", "mode", "dtype", "batch", "fused method", *(f"vs {b}" for b in baselines)]
    rows = []
    for c in _sorted_cases(report):
        for f, ratios in c.get("speedup", {}).items():
            rows.append([c["scope"], c["mode"], c["dtype"], str(c["batch"]), f,
                         *(f"{ratios[b]:.2f}x" if b in ratios else "-" for b in baselines)])
    return header, rows


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> str:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(r):
        return "  ".join(f"{str(x):<{w}}" if i < left else f"{str(x):>{w}}"
                         for i, (x, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(header), "-" * len(line(header)), *(line(r) for r in rows)])


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def format_text(report: dict) -> str:
    env = report["environment"]
    lines = [f"bench: {env['device_name']} ({env['device']}), torch {env['torch']}, triton {env['triton']}, "
             f"commit {env['git_commit']}", f"== {report['label']} =="]
    lines += [f"note: {n}" for n in report.get("notes", [])]
    lines += ["", _text_table(*long_rows(report), left=5)]
    header, rows = speedup_rows(report)
    if rows:
        lines += ["", "Speedup of each fused method (baseline median / fused median; > 1: fused is faster)",
                  _text_table(header, rows, left=5)]
    return "\n".join(lines)


def format_markdown(report: dict, parity: dict | None = None) -> str:
    """The report as markdown: environment, notes, a compact medians table per mode and dtype, the
    speedups, the full table, and the raw timings in a collapsed section."""
    env = report["environment"]
    s = report["settings"]
    title = env["device_name"] if env["device"] == "cuda" else f"CPU ({env['device_name']})"
    lines = [f"# fused_inception benchmark: {title}", ""]
    gpu = env["device"] == "cuda"
    rotation = (f"inputs rotated (enough to cycle through {s.get('rotate_mb'):g} MB)" if s.get("rotate_mb")
                else "2 inputs alternated")
    facts = [("device", env["device_name"]), ("driver", env.get("driver")),
             ("CUDA", env.get("cuda") if gpu else None), ("cuDNN", env.get("cudnn") if gpu else None),
             ("torch", env["torch"]), ("triton", env["triton"]),
             ("git commit", env["git_commit"]), ("date", env["date"]), ("command", f"`{env['command']}`"),
             ("variant", s.get("variant")), ("image size", s.get("size")),
             ("timing", f"warm-up {s.get('warmup')} calls, >= {s.get('repeat')} calls and >= {s.get('rep_ms')} ms "
                        f"measured per method; {rotation}"),
             ("threads", s.get("threads") if not gpu else None),
             ("total bench time", f"{report.get('seconds')} s"),
             ("runs merged", len(report["merged_from"]) if report.get("merged_from") else None)]
    lines += [f"- **{k}**: {v}" for k, v in facts if v is not None]
    lines += ["", f"**{report['label']}**", ""]
    lines += [f"- {n}" for n in report.get("notes", [])]
    lines += ["", _tuned_note(env), ""]
    methods = _methods_in(report)
    groups: dict[tuple[str, str], list[dict]] = {}
    for c in _sorted_cases(report):
        groups.setdefault((c["mode"], c["dtype"]), []).append(c)
    lines += ["## Median ms per call (lower is better)", ""]
    for (mode, dtype), cases in groups.items():
        lines += [f"### {mode}, {dtype}", ""]
        header = ["scope", "batch", *methods, "best fused vs best baseline"]
        rows = []
        for c in cases:
            res = c["results"]
            cells = [_cell_time(res[m]) if m in res else "" for m in methods]
            fused = [(r["median_ms"], m) for m, r in res.items() if METHODS[m].fused and "median_ms" in r]
            base = [(r["median_ms"], m) for m, r in res.items() if not METHODS[m].fused and "median_ms" in r]
            best = (f"{min(base)[0] / min(fused)[0]:.2f}x ({min(fused)[1]} vs {min(base)[1]})"
                    if fused and base else "-")
            rows.append([c["scope"], str(c["batch"]), *cells, best])
        lines += [_md_table(header, rows), ""]
    header, rows = speedup_rows(report)
    if rows:
        lines += ["## Speedups (baseline median / fused median; > 1: fused is faster)", "",
                  _md_table(header, rows), ""]
    lines += ["## All measurements", "", _md_table(*long_rows(report)), ""]
    if parity is not None:
        from .parity_report import format_markdown as parity_md

        lines += ["## Parity", "", parity_md(parity), ""]
    lines += ["<details><summary>Raw timings (ms per call)</summary>", ""]
    for c in _sorted_cases(report):
        for m, r in c["results"].items():
            if "times_ms" in r:
                t = r["times_ms"]
                more = f" ... ({len(t)} in all: see the JSON)" if len(t) > RAW_IN_MARKDOWN else ""
                lines.append(f"- {c['scope']} {c['mode']} {c['dtype']} b{c['batch']} {m}: "
                             + ", ".join(f"{x:.4g}" for x in t[:RAW_IN_MARKDOWN]) + more)
    lines += ["", "</details>", ""]
    return "\n".join(lines)


RAW_IN_MARKDOWN = 40  # raw timings listed per measurement in the markdown (the JSON has them all)


def _tuned_note(env: dict) -> str:
    tuned = Path(__file__).resolve().parent / "kernels" / "tuned"
    if not tuned.is_dir():
        tuned = Path(__file__).resolve().parent.parent / "kernels" / "tuned"
    files = sorted(p.name for p in tuned.glob("*.json")) if tuned.is_dir() else []
    name = slug(env.get("device_name") or "")
    mine = f"{name}.json"
    if mine in files:
        return f"Tuned kernel configs: kernels/tuned/{mine} (used)."
    return (f"Tuned kernel configs: per-GPU JSON files under kernels/tuned/ ({mine} for this device); "
            f"{'none exist yet' if not files else 'none for this device (have: ' + ', '.join(files) + ')'}: "
            "the curated default configs of kernels/configs.py ran.")


def plot(report: dict, path: str) -> None:
    """Throughput (img/s) against batch, one panel per scope and (mode, dtype), a line per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib "
                           "(or the bench extra: pip install 'fused-inception[bench]')") from err
    cases = _sorted_cases(report)
    combos = list(dict.fromkeys((c["mode"], c["dtype"]) for c in cases))
    scopes = [s for s in ("net", *BLOCKS) if any(c["scope"] == s for c in cases)]
    fig, axes = plt.subplots(len(scopes), len(combos), figsize=(4.2 * len(combos), 2.8 * len(scopes)),
                             squeeze=False)
    for i, scope in enumerate(scopes):
        for j, (mode, dtype) in enumerate(combos):
            ax = axes[i][j]
            sel = [c for c in cases if c["scope"] == scope and c["mode"] == mode and c["dtype"] == dtype]
            for m in _methods_in(report):
                pts = sorted((c["batch"], c["results"][m]["img_per_s"]) for c in sel
                             if m in c["results"] and "img_per_s" in c["results"][m])
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                            linestyle="-" if METHODS[m].fused else "--", label=m)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{scope} {mode} {dtype}", fontsize=9)
            ax.set_xlabel("batch", fontsize=8)
            ax.set_ylabel("img/s", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = [], []
    for row in axes:
        for ax in row:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
    env = report["environment"]
    fig.suptitle(f"{env['device_name']} - {report['label']}", fontsize=10)
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.9, 0.97))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = CPU_DEFAULTS
    gg = GPU_DEFAULTS
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when available, else cpu")
    parser.add_argument("--variant", choices=("torchvision", "paper"), default="torchvision",
                        help="GoogLeNet variant (default: torchvision)")
    parser.add_argument("--size", type=int, default=None,
                        help=f"network input H = W; blocks get their in-network shape at it "
                             f"(default: {gg['size']} on a GPU, {g['size']} on the CPU)")
    parser.add_argument("--batch", default=None,
                        help=f"comma-separated batch sizes (default: {gg['batch']} on a GPU, {g['batch']} on the CPU)")
    parser.add_argument("--dtypes", default=None,
                        help=f"comma-separated of fp32, fp16, bf16 (default: {gg['dtypes']} on a GPU, "
                             f"{g['dtypes']} on the CPU)")
    parser.add_argument("--scopes", default=None,
                        help="comma-separated of 3a..5b, net, 'blocks', 'all' (default: all)")
    parser.add_argument("--modes", default=None,
                        help=f"comma-separated of {', '.join(MODES)} (default: infer,train)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated of {', '.join(METHODS)} (default: {','.join(GPU_METHODS)} on a "
                             f"GPU, {','.join(CPU_METHODS)} on the CPU)")
    parser.add_argument("--compile", action="store_true",
                        help="CPU: also time torch.compile (left out by default: slow to compile there)")
    parser.add_argument("--compile-mode", default=None,
                        help=f"torch.compile mode (default: {gg['compile_mode']} on a GPU, {g['compile_mode']} on "
                             "the CPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"warm-up calls per method (default: {gg['warmup']} GPU, {g['warmup']} CPU)")
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"minimum timed calls per method (default: {gg['repeat']} GPU, {g['repeat']} CPU)")
    parser.add_argument("--rep-ms", type=float, default=None,
                        help=f"time to measure per method, ms (default: {gg['rep_ms']:.0f} GPU, {g['rep_ms']:.0f} CPU)")
    parser.add_argument("--rotate-mb", type=float, default=None,
                        help=f"preallocate enough inputs to cycle through this many MB (2 at least; "
                             f"default: {gg['rotate_mb']:.0f} on a GPU, 2 inputs on the CPU)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                        help="GPU fp32: allow TF32 in cuDNN, cuBLAS and the fused kernels (default: on, "
                             "PyTorch's conv default)")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="GPU: torch.backends.cudnn.benchmark for the eager baselines (default: on)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads while timing (default: 1 on the CPU, where more threads stall "
                             "at OpenMP barriers whenever another process holds a core; unchanged on a GPU)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed (default: 0)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop starting new measurements after this many seconds (the rest are "
                             "recorded as skipped)")
    parser.add_argument("--json", metavar="PATH",
                        help="write every raw timing, median and the environment as JSON (rewritten after each case)")
    parser.add_argument("--markdown", metavar="PATH", help="write the results as a markdown report")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of img/s against batch (needs matplotlib)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="no timing: merge these bench JSON files into one report (then --json, "
                             "--markdown, --plot write it)")
    parser.add_argument("--parity-json", metavar="PATH",
                        help="with --markdown: append the table of a `parity --json` file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


def run(args: argparse.Namespace) -> int:
    """The bench subcommand; 0 on success, 1 if a method failed or a check mismatched, 2 on bad input."""
    if getattr(args, "plot", None):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("error: --plot needs matplotlib: pip install matplotlib (or pip install "
                  "'fused-inception[bench]')", file=sys.stderr)
            return 2
    if getattr(args, "merge", None):
        try:
            report = merge_reports([json.loads(Path(p).read_text()) for p in args.merge])
        except (OSError, ValueError, KeyError) as err:
            print(f"error: cannot merge: {err}", file=sys.stderr)
            return 2
    else:
        try:
            settings = resolve_settings(args)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if settings["device"] == "cpu":
            print(f"bench on the CPU: {CPU_LABEL}", flush=True)
        for note in settings["notes"]:
            print(f"note: {note}", flush=True)
        n = len(settings["scopes"]) * len(settings["modes"]) * len(settings["dtypes"]) * len(settings["batches"])
        print(f"{n} cases x {len(settings['methods'])} methods ({', '.join(settings['methods'])})", flush=True)
        with pytorch_fallback_on_cpu() as was_interpreted:
            if was_interpreted and settings["device"] == "cpu":
                print("note: TRITON_INTERPRET=1 was set; it is off while this command times the PyTorch path",
                      flush=True)
            report = run_bench(settings, progress_enabled=not args.no_progress, json_path=args.json)
    print(format_text(report))
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")
    if getattr(args, "markdown", None):
        parity = None
        if getattr(args, "parity_json", None):
            try:
                parity = json.loads(Path(args.parity_json).read_text())
            except (OSError, ValueError) as err:
                print(f"warning: cannot read {args.parity_json}: {err}", file=sys.stderr)
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(format_markdown(report, parity))
        print(f"wrote {args.markdown}")
    if getattr(args, "plot", None):
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    bad = [(c["scope"], c["mode"], c["dtype"], c["batch"], m) for c in report["cases"]
           for m, r in c["results"].items() if "error" in r or r.get("check") == "MISMATCH"]
    for b in bad:
        print(f"problem: {'/'.join(map(str, b[:4]))} {b[4]}: see the table", file=sys.stderr)
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fused_inception.bench", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
