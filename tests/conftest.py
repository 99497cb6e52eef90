"""Test set-up: without CUDA, run the Triton kernels through the interpreter on the CPU.

TRITON_INTERPRET must be set before triton is imported (triton.jit reads it when the kernels are
decorated), so this runs before any test module imports fused_inception. ``import torch`` does not
import triton.
"""

import os
import sys

import torch

if not torch.cuda.is_available():
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("triton was imported before tests/conftest.py could set TRITON_INTERPRET=1")
    os.environ["TRITON_INTERPRET"] = "1"

# fresh random inputs every run; the seed is printed so a failure can be replayed
SEED = int(os.environ.get("FI_TEST_SEED", torch.seed() % 2**31))


def pytest_report_header(config):
    mode = "CUDA" if torch.cuda.is_available() else "Triton interpreter (CPU)"
    return f"fused_inception kernels run on: {mode}; test seed FI_TEST_SEED={SEED}"


import pytest  # noqa: E402


@pytest.fixture
def gen(request) -> torch.Generator:
    """A CPU generator seeded from the session seed and the test's id (fresh each run)."""
    g = torch.Generator()
    g.manual_seed((SEED + sum(map(ord, request.node.nodeid)) * 7919) % 2**63)
    return g
