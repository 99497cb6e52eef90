"""pytest-benchmark suite: eager vs fused inference per Inception block (3a..5b) and for the whole
torchvision-variant GoogLeNet.

Run: ``pytest benchmarks --benchmark-only`` (compare runs with ``--benchmark-autosave`` /
``--benchmark-compare``). Every timed call ends with ``torch.cuda.synchronize()`` on a GPU (and the
device is synchronized before the first), so a round is the call's full device time. Inputs rotate
through several preallocated tensors. GPU-only cases (CUDA graphs, bf16, batches 32 and 256) are
skipped on the CPU with a reason; there the fused blocks take the PyTorch fallback path at
64x64 input and batch 1: not kernel performance figures.

``python -m fused_inception bench`` is the fuller tool (all baselines side by side, training steps,
JSON/markdown/plot).
"""

from __future__ import annotations

import pytest
import torch

from fused_inception.spec import BLOCK_NAMES
from fused_inception.tools.bench.cases import Case, CaseSetup, prepare_call, scope_input_shape, scope_module
from fused_inception.tools.bench.run import CPU_LABEL
from fused_inception.tools.bench.timing import check_bound

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"

# (id, dtype, batch, GPU only)
CONFIGS = [
    ("fp32-b1", "fp32", 1, False),
    ("bf16-b32", "bf16", 32, True),
    ("bf16-b256", "bf16", 256, True),
    ("fp32-b256", "fp32", 256, True),
]
# (method, GPU only)
METHODS = [("eager", False), ("fused", False), ("eager-cl", True), ("fused-cl", True),
           ("cudagraph", True), ("fused-cudagraph", True)]
ROUNDS = {"cpu": (3, 15), "cuda": (10, 50)}  # (warm-up rounds, timed rounds)


def _params():
    for scope in (*BLOCK_NAMES, "net"):
        for cfg_id, dtype, batch, cfg_gpu in CONFIGS:
            for method, method_gpu in METHODS:
                marks = []
                if (cfg_gpu or method_gpu) and not CUDA:
                    marks.append(pytest.mark.skip(reason=f"GPU only ({cfg_id} {method}): no CUDA device"))
                yield pytest.param(scope, dtype, batch, method, id=f"{scope}-{cfg_id}-{method}", marks=marks)


@pytest.mark.parametrize("scope,dtype,batch,method", list(_params()))
def test_inference(benchmark, base_model, scope, dtype, batch, method):
    model, size, shapes = base_model
    case = Case(scope, "infer", dtype, batch)
    in_shape = scope_input_shape(scope, size, shapes)
    module = scope_module(model, scope)
    setup = CaseSetup(case, module, in_shape, DEVICE, 192.0 if CUDA else 0.0, torch.Generator().manual_seed(1),
                      model.fc.out_features)
    fn, info = prepare_call(setup, method, "default")
    if method != "eager":  # the timed path computes what eager computes
        eager_fn, _ = prepare_call(setup, "eager", "default")
        ref = eager_fn(0).double()
        out = fn(0).double()
        rel = float((out - ref).norm() / ref.norm())
        bound = check_bound(dtype, scope, tf32=CUDA and torch.backends.cudnn.allow_tf32)
        assert rel < bound, f"{method} differs from eager by {rel:.2e} (sanity bound {bound:.0e})"

    counter = iter(range(10**9))

    def call():
        out = fn(next(counter))
        if CUDA:
            torch.cuda.synchronize()
        return out

    if CUDA:
        torch.cuda.synchronize()
    warmup, rounds = ROUNDS[DEVICE]
    if scope == "net" and not CUDA:
        rounds = 5
    benchmark.extra_info.update({
        "device": torch.cuda.get_device_name() if CUDA else "cpu",
        "label": "GPU: Triton kernels" if CUDA else CPU_LABEL,
        "input_shape": [batch, *in_shape], "dtype": dtype, "method": method, "setup_s": info["setup_s"],
    })
    benchmark.group = f"{scope} {dtype} b{batch}"
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=warmup, iterations=1)
