"""What the launchers ask of the GPU: its SM count and architecture, which size the reduce -> k x k
persistent grid and pick both kernels' aligned tiles; and what the Triton interpreter pretends to
be instead. compile-check's launch recorder (tools/compile_check/aot.py) replaces ``sm_count`` and
``sm_arch`` to record the launches of GPUs it does not have (the launchers look them up here at
call time)."""

from __future__ import annotations

import torch

# SMs the interpreter pretends to have, one program slot each: programs run one after another
# there, so the count only sizes reduce_conv's scratch and decides which tiles a launch takes, but
# a small one makes tests of a tile or two take the split path and tests of a few tiles reuse a slot
INTERPRETER_SMS = 4
# the SM architecture the interpreter stands for: it picks aligned tiles as an sm_90 GPU would
INTERPRETER_ARCH = 90


def sm_count(device: torch.device) -> int | None:
    """The device's SM count; None off CUDA (the interpreter: INTERPRETER_SMS)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return None


def sm_arch(device: torch.device) -> int:
    """The device's SM architecture (80 for sm_80, 90 for sm_90); INTERPRETER_ARCH off CUDA."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return 10 * major + minor
    return INTERPRETER_ARCH


def sms_for_tiles(sms: int | None) -> int:
    """The SM count a launch's tiles (configs.tiles_for) and reduce_conv's grid are sized for, from
    ``sm_count``'s answer: the device's, or INTERPRETER_SMS where it gave None (the interpreter)."""
    return INTERPRETER_SMS if sms is None else sms
