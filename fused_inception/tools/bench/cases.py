"""What ``python -m fused_inception bench`` times: the scopes, modes, dtypes and methods, one case's
module and preallocated inputs, and one method's call ready to time (``prepare_call``): the module
copied, fused or not, in its layout, wrapped in torch.compile or captured in a CUDA graph, running
inference or a training step (forward, backward, SGD step)."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from fused_inception.dtypes import SHORT_NAMES
from fused_inception.forward import output_memory_format
from fused_inception.models import GoogLeNetLoss
from fused_inception.module import FusedInception
from fused_inception.patching import fuse
from fused_inception.spec import BLOCK_NAMES
from fused_inception.stem import FusedStemUnit
from fused_inception.tools.tactic_report import ran_tactics

# the stem: what the network runs before inception3a (conv1, maxpool1, [lrn1], conv2, conv3, [lrn2],
# maxpool2); timed alone so that a GPU run says what the network spends there, and what fusing its
# units' BN, ReLU and pools (fused_inception.stem, torchvision variant) saves
STEM = "stem"
SCOPES = (STEM, *BLOCK_NAMES, "net")
MODES = ("infer", "train", "finetune")


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
MAX_INPUTS = 512  # preallocated inputs per case at most


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
                 gen: torch.Generator, num_classes: int, fused_base: nn.Module | None = None) -> None:
        # fused_base: what the fused methods copy instead of fuse(base), where fuse() cannot see
        # the fusion from the scope alone (the stem: fused_stem_module)
        self.case, self.base, self.device, self.fused_base = case, base, device, fused_base
        dtype = SHORT_NAMES[case.dtype]
        shape = (case.batch, *in_shape)
        nbytes = math.prod(shape) * torch.finfo(dtype).bits // 8
        n = 2 if rotate_mb <= 0 else int(min(MAX_INPUTS, max(2, math.ceil(rotate_mb * 2**20 / nbytes))))
        self.rotated_bytes = n * nbytes  # one layout's inputs, cycled through by each method
        # drawn on the device (hundreds of inputs per case on a GPU), seeded from ``gen``
        dev_gen = torch.Generator(device=device)
        dev_gen.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        xs = [torch.randn(shape, generator=dev_gen, device=device, dtype=dtype) for _ in range(n)]
        self.inputs = {False: xs, True: [x.contiguous(memory_format=torch.channels_last) for x in xs]}
        self.targets = [torch.randint(0, num_classes, (case.batch,), generator=dev_gen, device=device)
                        for _ in range(n)]
        self.grad_out = None  # a block's upstream gradient, made once its output shape is known
        self.gen = gen


def warm_cache(rotated_bytes: int, l2_bytes: int | None) -> bool | None:
    """Whether a case's timings are warm-cache ones: its rotated inputs (``rotated_bytes``, capped
    at MAX_INPUTS inputs) are smaller than twice the GPU's L2 (``l2_bytes``), so inputs may still be
    resident when their turn comes again (the L2 is not a strict LRU: a set of up to twice its size
    can partly stay). None without an L2 size (the CPU: not judged)."""
    if not l2_bytes:
        return None
    return rotated_bytes < 2 * l2_bytes


def _build_module(setup: CaseSetup, method: Method) -> nn.Module:
    dtype = SHORT_NAMES[setup.case.dtype]
    if method.fused and setup.fused_base is not None:
        module = copy.deepcopy(setup.fused_base)
    else:
        module = copy.deepcopy(setup.base)
        if method.fused:
            module = fuse(module, inplace=True)
    fmt = torch.channels_last if method.channels_last else torch.preserve_format
    module = module.to(device=setup.device, dtype=dtype, memory_format=fmt)
    module.train(setup.case.mode == "train")
    for p in module.parameters():
        p.requires_grad_(setup.case.mode != "infer")
    return module


def _make_step(setup: CaseSetup, method: Method, module: nn.Module, compile_mode: str, reset_dynamo: bool):
    """``step(x, target) -> output`` for the case's mode, and the module that runs it."""
    runner: Callable = module
    if method.wrap == "compile":
        if reset_dynamo:
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
                setup.grad_out = setup.grad_out.contiguous(memory_format=output_memory_format(out))
            out.backward(setup.grad_out)
        optimizer.step()
        return out
    return step


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


def prepare_call(setup: CaseSetup, name: str, compile_mode: str,
                 reset_dynamo: bool = True) -> tuple[Callable[[int], object], dict]:
    """``fn(i)``: one call of method ``name`` on the case's i-th input (cyclically), built and
    warmed up once (torch.compile and Triton compile here, CUDA graphs are captured here); and
    facts gathered while building it (``setup_s``; ``peak_mem_mb`` for CUDA-graph methods; for
    fused methods ``fused_blocks`` and ``tactics``, what each block ran and why:
    ``tactic_report.ran_tactics``). ``reset_dynamo``: a compile method first clears dynamo's
    caches; False where several methods are built before any is timed (one reset per case)."""
    method = METHODS[name]
    module = _build_module(setup, method)
    info: dict = {}
    if method.fused:
        info["fused_blocks"] = sum(isinstance(m, FusedInception) for m in module.modules())
        info["fused_stem_units"] = sum(isinstance(m, FusedStemUnit) for m in module.modules())
        if info["fused_blocks"] + info["fused_stem_units"] == 0:
            raise RuntimeError("fuse() swapped no Inception block and no stem unit")
    step = _make_step(setup, method, module, compile_mode, reset_dynamo)
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
    if method.fused:  # what the warm-up (or captured) call ran: every later call of the case runs the same
        info["tactics"] = ran_tactics(module, setup.case.scope)
    return fn, info


def scope_module(model: nn.Module, scope: str) -> nn.Module:
    """The module a scope times, sharing ``model``'s parameters: the network (``net``), its stem
    (``STEM``: an ``nn.Sequential`` of ``model.stem_modules()``; GoogLeNet's ``transform_input`` is
    not part of it) or one Inception block."""
    if scope == "net":
        return model
    if scope == STEM:
        return nn.Sequential(*model.stem_modules())
    return model.get_submodule(f"inception{scope}")


def fused_stem_module(model: nn.Module) -> nn.Module:
    """The stem as the fused network runs it: ``scope_module(fuse(model), STEM)`` (fuse() fuses a
    GoogLeNet's stem units, which it cannot recognise in the stem's modules alone)."""
    return scope_module(fuse(model), STEM)


def stem_is_fused(stem: nn.Module) -> bool:
    """Whether a stem module (``fused_stem_module``) holds a FusedStemUnit (the paper variant's
    stem has none)."""
    return any(isinstance(m, FusedStemUnit) for m in stem.modules())


def scope_input_shape(scope: str, size: int, block_shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """(C, H, W) of a scope's input at a ``size`` x ``size`` image (``block_shapes``: from
    ``block_input_shapes``)."""
    return (3, size, size) if scope in ("net", STEM) else block_shapes[scope]


def block_input_shapes(model: nn.Module, size: int) -> dict[str, tuple[int, ...]]:
    """(C, H, W) of each Inception block's input in ``model`` at a ``size`` x ``size`` input."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in BLOCK_NAMES:
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

