"""The reduce -> k x k kernel's schedule: every shipped config against a float64 reference on small
shapes that take each path of the loops (k = 1, 3, 5, 7; several reduce chunks and output-channel
blocks; one tile shared by several programs through the column split; more tiles than programs;
NCHW and channels_last; ReLU off; odd channel counts), and the grid rule that fills the GPU.

Runs on the interpreter (tests/conftest.py). The "tf32" config gets TF32-rounded input and weights
(the launcher's contract, kernels/tf32.py) and rounds its scratch itself; the reference rounds at
the same points, so it is held to float32 accuracy (3e-5: see _TF32_BOUND). bf16 is not run: the
interpreter's bf16 dot is not bf16's.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from block_helpers import DEVICE, random_input, tf32_round
from fused_inception import forward
from fused_inception.kernels import reduce_conv as rc
from fused_inception.kernels.configs import CANDIDATES, REDUCE_CONV_CONFIGS, ReduceConvConfig
from fused_inception.tolerances import assert_close, compare, poisoned
from fused_inception.spec import GOOGLENET_BLOCKS, googlenet_spec

pytestmark = pytest.mark.skipif(not forward.uses_triton(torch.empty(0)), reason="runs the Triton kernel")

# dot class -> (dtype, dot precision, tolerance key)
RUNS = {
    "mma": (torch.float16, "ieee", "float16"),
    "tf32": (torch.float32, "tf32", "float32"),
    "fma": (torch.float32, "ieee", "float32"),
}
# TF32 runs against the rounded-operand reference: a reduced value accumulated in float32 (kernel)
# and in float64 (reference) can round to neighbouring TF32 values at a rounding boundary, a few
# 1e-6; a rounding the kernel misses gives 1e-4 and more
_TF32_BOUND = 3e-5
# every shipped reduce_conv config with the dot class it is a candidate of
SHIPPED = sorted((name, cls) for (kernel, cls), names in CANDIDATES.items() if kernel == "reduce_conv"
                 for name in names)

# (N, C_in, H, W, R, C_out, k, relu, channels_last)
CASES = [
    (2, 24, 5, 6, 16, 24, 3, True, True),  # one tile (BLOCK_M 64), one column block
    (1, 20, 7, 9, 70, 130, 5, True, False),  # R over two reduce chunks; one tile, C_out's 3 blocks
                                             # split over 3 programs (BLOCK_N 64)
    (2, 16, 9, 9, 24, 48, 7, False, True),  # 162 pixels: 3 tiles (BLOCK_M 64); ReLU off
    (2, 16, 12, 12, 24, 48, 3, True, True),  # 288 pixels: 5 tiles on 4 programs, so a program
                                             # reuses its scratch slot for a second tile
    (1, 16, 12, 16, 24, 192, 3, True, False),  # 3 tiles x 2 uneven column splits (blocks {0, 2}
                                               # and {1}): 6 items on 4 programs
    (1, 33, 4, 5, 48, 16, 1, True, False),  # k = 1: no halo; odd C_in
]


def _reference(x64, w_red, b_red, w_conv, b_conv, k, relu, dtype, tf32):
    """float64 reduce -> k x k with the reduced tensor rounded as the scratch is: to ``dtype``, and
    to TF32 when the dots are (``tf32``)."""
    act = F.relu if relu else (lambda t: t)
    red = act(torch.einsum("nchw,cr->nrhw", x64, w_red.double()) + b_red.double()[None, :, None, None])
    red = tf32_round(red.float()) if tf32 else red.to(dtype).double()
    r, c = w_conv.shape[1:]
    weight = w_conv.double().reshape(k, k, r, c).permute(3, 2, 0, 1)
    return act(F.conv2d(red, weight, b_conv.double(), padding=k // 2))


def test_every_shipped_config_is_run():
    assert {name for name, _ in SHIPPED} == set(REDUCE_CONV_CONFIGS)


@pytest.mark.parametrize("name, cls", SHIPPED, ids=lambda v: v)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_r{c[4]}_o{c[5]}_k{c[6]}")
def test_shipped_config_matches_float64(name, cls, case, gen):
    n, c_in, h, w, r, c_out, k, relu, channels_last = case
    cfg = REDUCE_CONV_CONFIGS[name]
    dtype, precision, tol = RUNS[cls]
    x64 = random_input((n, c_in, h, w), gen)
    w_red = (random_input((c_in, r), gen) / c_in ** 0.5).to(dtype)
    b_red = random_input((r,), gen).float()
    w_conv = (random_input((k * k, r, c_out), gen) / (k * k * r) ** 0.5).to(dtype)
    b_conv = random_input((c_out,), gen).float()
    x = x64.to(dtype)
    if precision == "tf32":  # the launcher takes TF32 values (the forward rounds them)
        x, w_red, w_conv = (tf32_round(t).float() for t in (x, w_red, w_conv))
    ref = _reference(x.double(), w_red, b_red, w_conv, b_conv, k, relu, dtype, precision == "tf32")

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    before, after, sentinel = 3, 2, 4321.0
    out = poisoned((n, before + c_out + after, h, w), dtype, DEVICE, fmt)
    out[:, :before] = sentinel
    out[:, before + c_out:] = sentinel
    rc.launch_reduce_conv(x.to(DEVICE).contiguous(memory_format=fmt), w_red.to(DEVICE), b_red.to(DEVICE),
                          w_conv.to(DEVICE), b_conv.to(DEVICE), k, out, before, relu, precision, cfg)
    if precision == "tf32":
        result = compare(out[:, before:before + c_out].cpu(), ref, tol)
        assert result.rel_error <= _TF32_BOUND, f"reduce_conv/{name} {case}: {result}"
    else:
        assert_close(out[:, before:before + c_out].cpu(), ref, tol, f"reduce_conv/{name} {case}")
    assert bool((out[:, :before] == sentinel).all()) and bool((out[:, before + c_out:] == sentinel).all())


def test_cases_take_the_split_and_the_persistent_paths():
    """On the interpreter's INTERPRETER_SMS (one program slot each), CASES give (for BLOCK_M 64) a tile
    split over several programs, more tiles than programs (a slot reused), and more (tile, column
    split) items than programs with an uneven split."""
    cfg = REDUCE_CONV_CONFIGS["mma"]
    cpu = torch.device("cpu")
    assert rc.reduce_conv_grid(1, 24, cfg, cpu) == (1, 1)  # one column block: nothing to split
    assert rc.reduce_conv_grid(1, 130, cfg, cpu) == (3, 3)
    assert rc.reduce_conv_grid(3, 48, cfg, cpu) == (3, 1)
    assert rc.reduce_conv_grid(2, 24, ReduceConvConfig(32, 32, 16, 16, 16, 16), cpu) == (4, 2)
    assert rc.reduce_conv_grid(11, 130, cfg, cpu) == (4, 1)  # 11 tiles on 4 programs
    assert rc.reduce_conv_grid(5, 48, cfg, cpu) == (4, 1)  # 5 tiles on 4 programs: slot reuse
    assert rc.reduce_conv_grid(3, 192, cfg, cpu) == (4, 2)  # 6 items on 4 programs, uneven split


def _fake_gpu(monkeypatch, sms: int) -> torch.device:
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(multi_processor_count=sms))
    return torch.device("cuda")


def test_slots_candidate_splits_to_fill_every_slot(monkeypatch):
    """Block 5b's 3x3 branch (384 output channels) at batch 256 on 132 SMs: 196 tiles. The default
    does not split (every SM has a tile); the ``mma-slots`` candidate splits 3 ways to fill the
    3 x 132 slots, the rule tune compares it with."""
    device = _fake_gpu(monkeypatch, 132)
    assert rc.reduce_conv_grid(196, 384, REDUCE_CONV_CONFIGS["mma"], device) == (196, 1)
    assert rc.reduce_conv_grid(196, 384, REDUCE_CONV_CONFIGS["mma-slots"], device) == (396, 3)


@pytest.mark.parametrize("sms", [108, 132])
def test_grid_gives_every_sm_work_for_every_googlenet_branch(monkeypatch, sms):
    """Every GoogLeNet reduce -> k x k branch at batch 1, 32 and 256 launches programs = the
    smaller of the program slots and the work items, using the smallest column split that gives
    every SM a work item (n_split programs per tile, at most one per output-channel block), and
    none once the tiles alone do; configs without split_columns (fp32 FMA) one program per tile."""
    device = _fake_gpu(monkeypatch, sms)
    for name, cfg in REDUCE_CONV_CONFIGS.items():
        slots = sms * cfg.programs_per_sm
        for block, (_, size) in GOOGLENET_BLOCKS.items():
            spec = googlenet_spec(block, "paper")
            for batch in (1, 32, 256):
                tiles = -(-batch * size * size // cfg.BLOCK_M)
                for c_out in (spec.ch3x3, spec.ch5x5):
                    col_blocks = -(-c_out // cfg.BLOCK_N)
                    programs, n_split = rc.reduce_conv_grid(tiles, c_out, cfg, device)
                    if not cfg.split_columns:
                        assert (programs, n_split) == (min(slots, tiles), 1)
                        continue
                    assert 1 <= n_split <= col_blocks
                    assert programs == min(slots, tiles * n_split)
                    # the default split gives every SM a work item; a "slots" candidate, every slot
                    target = sms if cfg.split_fill == "sms" else slots
                    if n_split < col_blocks:
                        assert tiles * n_split >= target  # the split reaches its target
                    if n_split > 1:
                        assert tiles * (n_split - 1) < target  # the smallest split that does it
                    if tiles >= target:
                        assert n_split == 1  # the tiles alone reach it: no reduction recomputed
