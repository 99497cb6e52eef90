"""Test set-up: the Triton interpreter without CUDA, IEEE float32 with CUDA, and one replayable random seed per run.

TRITON_INTERPRET must be set before triton is imported (triton.jit reads it when the kernels are
decorated), so this runs before any test module imports fused_inception. ``import torch`` does not
import triton.

Seed: ``FI_TEST_SEED`` if set, else a fresh one; it is written back to the environment (so
subprocesses and tests/test_properties.py's hypothesis seed see the same value) and printed in the
terminal summary, which ``pytest -q`` shows too (the report header it hides). Each test derives its
own seed from the run seed and its node id, for the ``gen`` fixture and for torch's and Python's
global generators, so one failing test replays alone with ``FI_TEST_SEED=<seed> pytest <node id>``.
"""

import os
import random
import sys
import zlib

import torch


def _skip_discarded_overflow_checks() -> None:
    """Stop the interpreter from computing int32 overflow checks that it then throws away.

    With ``sanitize_overflow`` on (its default), every int32 add, sub and mul a kernel traces is
    redone in int64 and compared with the int32 range, and the result goes to ``device_assert``,
    which returns without checking unless ``options.debug`` is on; the interpreter never turns
    debug on (triton 3.6 and 3.8). So the checks change nothing, and they cost about 40% of a
    reduce_conv launch in the interpreter (cProfile). This switches them off if debug is off at
    start-up (the interpreter never turns it on later); the kernels' results and every assert they
    make are unchanged. A triton without this (private) builder keeps its checks."""
    import dataclasses

    from triton.runtime import interpreter

    builder = getattr(interpreter, "interpreter_builder", None)
    if builder is not None and not builder.options.debug:
        builder.options = dataclasses.replace(builder.options, sanitize_overflow=False)


if not torch.cuda.is_available():
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("triton was imported before tests/conftest.py could set TRITON_INTERPRET=1")
    os.environ["TRITON_INTERPRET"] = "1"
    _skip_discarded_overflow_checks()
else:
    # The tests' float32 tolerances are IEEE ones against a float64 reference. PyTorch's default
    # runs fp32 cuDNN convs in TF32, and the fused kernels follow that rule (forward.dot_precision),
    # so on a GPU every float32 check would measure TF32 rounding (~1e-3) instead. TF32 has its own
    # tolerance in `python -m fused_inception parity --dtypes tf32`; tests that need TF32 turn it on.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _run_seed() -> int:
    text = os.environ.get("FI_TEST_SEED")
    if text is None:
        return random.SystemRandom().randrange(2**31)
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"FI_TEST_SEED must be an integer, got {text!r}") from None


SEED = _run_seed()
os.environ["FI_TEST_SEED"] = str(SEED)


def _replay_line() -> str:
    return f"fused_inception test seed: FI_TEST_SEED={SEED} (set it to replay this run)"


def pytest_report_header(config):
    mode = "CUDA" if torch.cuda.is_available() else "Triton interpreter (CPU)"
    return f"fused_inception kernels run on: {mode}; {_replay_line()}"


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(_replay_line())


import pytest  # noqa: E402


def seed_of(nodeid: str, stream: int = 0) -> int:
    """Seed ``stream`` of one test: a function of the run seed and the test's node id only."""
    return (SEED * 1_000_003 + zlib.crc32(nodeid.encode()) * 4 + stream) % 2**63


@pytest.fixture(autouse=True)
def _seed_global_generators(request):
    """Draws from torch's and Python's global generators replay with the run seed too."""
    # stream 1: not the gen fixture's stream, so global draws are not copies of gen's
    seed = seed_of(request.node.nodeid, stream=1)
    torch.manual_seed(seed)
    random.seed(seed)


@pytest.fixture
def gen(request) -> torch.Generator:
    """A CPU generator seeded from the run seed and the test's id (fresh each run)."""
    g = torch.Generator()
    g.manual_seed(seed_of(request.node.nodeid))
    return g


@pytest.fixture
def triton_tactic():
    """Every FusedInception call of the test runs the triton tactic (selection.force_tactic; in BN
    training that is the BN-training op), as the interpreter's policy picks for CPU tensors in CI.
    For tests whose subject is a path (record_paths), not the policy: on a GPU machine the
    interpreter is off and a CPU tensor would otherwise run the CPU's measured tactic (aten or
    aten-bn); there the triton tactic of a CPU tensor is inception_forward's PyTorch path."""
    from fused_inception.selection import force_tactic  # after TRITON_INTERPRET is set above
    from fused_inception.tactics import TRITON

    with force_tactic(TRITON):
        yield


@pytest.fixture
def fused_paths():
    """The path of each FusedInception call during the test, as ``(path, compute dtype)``
    (``fused_inception.module.record_paths``): "fused", "aten", "bn_train" or "modules"."""
    from fused_inception.module import record_paths  # after TRITON_INTERPRET is set above

    with record_paths() as calls:
        yield calls
