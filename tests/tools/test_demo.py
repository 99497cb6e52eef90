"""``python -m fused_inception demo`` as a newcomer runs it: a fresh process without
TRITON_INTERPRET. Without CUDA it must run the Triton kernels through the interpreter (in a fresh
process of its own) and report that path and an error against float64 within the fp32 tolerance;
with CUDA it runs the kernels on the GPU."""

from __future__ import annotations

import math
import os
import re
import resource
import subprocess
import sys
import time

import torch

from fused_inception.tools.cli import main
from fused_inception.tolerances import TOLERANCES

# "<variant> <what>, input (<shape>): fused (<path>[, <s> s]) vs float64 reference: pass: rel <r> (tol <t>), max abs <a>, <dtype>"
LINE = re.compile(r"^(paper|torchvision) (logits|block 3a), input \(([\d, ]+)\): fused \((.+?)(?:, ([\d.]+) s)?\) "
                  r"vs float64 reference: (pass|FAIL): rel (\S+) \(tol (\S+)\), max abs (\S+), (\w+)", re.M)


def run_demo(*args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """The demo in a fresh process without TRITON_INTERPRET; (result, wall s, CPU s of it and its
    children)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fused_inception", "demo", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def test_demo_reports_each_path_and_its_error():
    proc, wall, cpu = run_demo("--size", "32")
    print(f"demo --size 32: {wall:.1f} s wall, {cpu:.1f} s CPU")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = LINE.findall(proc.stdout)
    found = {(variant, what): (path, float(rel), float(tol), float(max_abs), dtype)
             for variant, what, _shape, path, _s, _verdict, rel, tol, max_abs, dtype in rows}
    cuda = torch.cuda.is_available()
    expected = {("paper", "logits"), ("torchvision", "logits")}
    if not cuda:
        expected |= {("paper", "block 3a"), ("torchvision", "block 3a")}
    assert set(found) == expected, proc.stdout
    for variant in ("paper", "torchvision"):
        assert re.search(rf"^unfused {variant} network in \w+ vs float64 reference: rel \S+$", proc.stdout, re.M), \
            proc.stdout
    for (variant, what), (path, rel, tol, max_abs, dtype) in found.items():
        if cuda:
            assert path == "Triton kernels (CUDA)", (variant, what, path)
        elif what == "logits":
            assert path == "aten tactic (CPU)", (variant, what, path)
        else:
            assert path == "Triton interpreter (CPU)", (variant, what, path)
        # a block at its dtype's tolerance; whole-network logits at the larger of that and twice
        # the unfused network's own error (printed by the demo)
        floor = TOLERANCES[dtype]
        assert (tol >= floor) if what == "logits" else (tol == floor), (variant, what, tol, floor)
        assert 0 <= rel <= tol, (variant, what, rel, tol)
        assert math.isfinite(max_abs), (variant, what, max_abs)


def test_demo_refuses_bad_sizes(capsys):
    assert main(["demo", "--block-size", "0"]) == 2
    assert "--block-size must be >= 1, got 0" in capsys.readouterr().err
