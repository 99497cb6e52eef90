"""pytest-benchmark suite set-up (``pytest benchmarks --benchmark-only``).

On a machine without CUDA the fused blocks must take their PyTorch fallback path, not the Triton
interpreter (whose timings mean nothing): every benchmark runs with TRITON_INTERPRET unset
(``ops.uses_triton`` reads it at call time) and one torch thread (with more, a busy machine stalls
each op at OpenMP barriers). CPU numbers are labelled as such in each benchmark's extra_info.
"""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()


def pytest_report_header(config):
    if CUDA:
        return f"benchmarks on {torch.cuda.get_device_name()}: Triton kernels"
    return "benchmarks on the CPU: PyTorch fallback path, one thread (not kernel performance figures)"


@pytest.fixture(autouse=True)
def _fallback_path_on_cpu(monkeypatch):
    if not CUDA:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)
    else:
        yield


@pytest.fixture(scope="session")
def base_model():
    """The torchvision-variant GoogLeNet with random weights and nonzero BN statistics (float32,
    CPU), and its blocks' input shapes at the suite's image size."""
    from fused_inception.tools.bench.cases import block_input_shapes
    from fused_inception.models.randomize import random_googlenet

    size = 224 if CUDA else 64
    gen = torch.Generator().manual_seed(0)
    model = random_googlenet("torchvision", gen, size, aux_logits=True, dtype=torch.float32)
    return model, size, block_input_shapes(model, size)
