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

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from block_helpers import DEVICE, random_input, tf32_round
from fused_inception import forward
from fused_inception.kernels import gpu as kernel_gpu
from fused_inception.kernels import reduce_conv as rc
from fused_inception.kernels.configs import CANDIDATES, REDUCE_CONV_CONFIGS, ReduceConvConfig, tiles_for
from fused_inception.tolerances import assert_close, assert_same_nonfinite, compare, poisoned
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
    (1, 16, 8, 16, 24, 192, 3, True, True),  # 2 tiles x 2 uneven column splits (blocks {0, 2}
                                             # and {1}): 4 items on 4 programs
    (1, 16, 12, 16, 24, 192, 3, True, False),  # 3 tiles: unsplit by the default (3 programs);
                                               # mma-slots splits them as above, 6 items on 4
                                               # programs
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


def _launch_and_check(cfg, cls, case, gen, around=(3, 2), bad=(), what=""):
    """Launch ``cfg`` on ``case`` into a NaN-poisoned output with ``around`` (before, after)
    sentinel channels beside the branch's slice and compare with the float64 reference; ``bad``:
    (n, c, h, w, value) entries written into the input (NaN/Inf: the output must show them where
    the reference does)."""
    n, c_in, h, w, r, c_out, k, relu, channels_last = case
    dtype, precision, tol = RUNS[cls]
    x64 = random_input((n, c_in, h, w), gen)
    for i, c, y, xx, value in bad:
        x64[i, c, y, xx] = value
    w_red = (random_input((c_in, r), gen) / c_in ** 0.5).to(dtype)
    b_red = random_input((r,), gen).float()
    w_conv = (random_input((k * k, r, c_out), gen) / (k * k * r) ** 0.5).to(dtype)
    b_conv = random_input((c_out,), gen).float()
    x = x64.to(dtype)
    if precision == "tf32":  # the launcher takes TF32 values (the forward rounds them)
        x, w_red, w_conv = (tf32_round(t).float() for t in (x, w_red, w_conv))
    ref = _reference(x.double(), w_red, b_red, w_conv, b_conv, k, relu, dtype, precision == "tf32")

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    (before, after), sentinel = around, 4321.0
    out = poisoned((n, before + c_out + after, h, w), dtype, DEVICE, fmt)
    out[:, :before] = sentinel
    out[:, before + c_out:] = sentinel
    rc.launch_reduce_conv(x.to(DEVICE).contiguous(memory_format=fmt), w_red.to(DEVICE), b_red.to(DEVICE),
                          w_conv.to(DEVICE), b_conv.to(DEVICE), k, out, before, relu, precision, cfg)
    got = out[:, before:before + c_out].cpu()
    if bad:
        assert not bool(torch.isfinite(ref).all()), "the bad values must reach the reference's output"
        assert_same_nonfinite(got, ref, tol, what)
    elif precision == "tf32":
        result = compare(got, ref, tol)
        assert result.rel_error <= _TF32_BOUND, f"{what}: {result}"
    else:
        assert_close(got, ref, tol, what)
    assert bool((out[:, :before] == sentinel).all()) and bool((out[:, before + c_out:] == sentinel).all())


@pytest.mark.parametrize("name, cls", SHIPPED, ids=lambda v: v)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_r{c[4]}_o{c[5]}_k{c[6]}")
def test_shipped_config_matches_float64(name, cls, case, gen):
    _launch_and_check(REDUCE_CONV_CONFIGS[name], cls, case, gen, what=f"reduce_conv/{name} {case}")


def test_cases_take_the_split_and_the_persistent_paths():
    """On the interpreter's INTERPRETER_SMS (one program slot each), CASES give (for BLOCK_M 64) a tile
    split over several programs, an uneven split, more tiles than programs (a slot reused), and
    (with the mma-slots candidate's rule) more (tile, column split) items than programs with an
    uneven split."""
    cfg = REDUCE_CONV_CONFIGS["mma"]
    assert rc.reduce_conv_grid(1, 24, cfg, None) == (1, 1)  # one column block: nothing to split
    assert rc.reduce_conv_grid(1, 130, cfg, None) == (3, 3)
    assert rc.reduce_conv_grid(3, 48, cfg, None) == (3, 1)
    assert rc.reduce_conv_grid(2, 24, ReduceConvConfig(32, 32, 16, 16, 16, 16), None) == (4, 2)
    assert rc.reduce_conv_grid(11, 130, cfg, None) == (4, 1)  # 11 tiles on 4 programs
    assert rc.reduce_conv_grid(5, 48, cfg, None) == (4, 1)  # 5 tiles on 4 programs: slot reuse
    assert rc.reduce_conv_grid(2, 192, cfg, None) == (4, 2)  # 3 column blocks over 2 splits
    assert rc.reduce_conv_grid(3, 192, cfg, None) == (3, 1)  # a split of 2 would not fit one wave
    # 6 items on 4 programs, uneven split
    assert rc.reduce_conv_grid(3, 192, REDUCE_CONV_CONFIGS["mma-slots"], None) == (4, 2)


def _fake_gpu(monkeypatch, sms: int) -> torch.device:
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(multi_processor_count=sms))
    return torch.device("cuda")


def test_slots_candidate_splits_to_fill_every_slot(monkeypatch):
    """Block 5b's 3x3 branch (384 output channels) at batch 256 on 132 SMs: 196 tiles. The default
    does not split (every SM has a tile); the ``mma-slots`` candidate splits 3 ways to fill the
    3 x 132 slots, the rule tune compares it with."""
    device = _fake_gpu(monkeypatch, 132)
    assert rc.reduce_conv_grid(196, 384, REDUCE_CONV_CONFIGS["mma"], kernel_gpu.sm_count(device)) == (196, 1)
    assert rc.reduce_conv_grid(196, 384, REDUCE_CONV_CONFIGS["mma-slots"], kernel_gpu.sm_count(device)) == (396, 3)


@pytest.mark.parametrize("sms", [108, 132])
def test_grid_and_column_split_for_every_googlenet_branch(monkeypatch, sms):
    """Every GoogLeNet reduce -> k x k branch at batch 1, 32 and 256 launches programs = the
    smaller of the program slots and the work items. The default column split (n_split programs
    per tile, at most one per output-channel block) is the largest whose items fit one wave, one
    per SM, and none once the tiles fill half the SMs (so SMs may idle: 5a/5b's 98 tiles of 128
    pixels at batch 256 run unsplit on 132 SMs); a "slots" candidate's is the smallest that gives
    every slot an item; configs without split_columns (fp32 FMA) one program per tile."""
    device = _fake_gpu(monkeypatch, sms)
    every = [c for base in REDUCE_CONV_CONFIGS.values() for c in (base, *(t for _, t in base.aligned))]
    for cfg in every:  # the configs and their aligned tiles
        slots = sms * cfg.programs_per_sm
        for block, (_, size) in GOOGLENET_BLOCKS.items():
            spec = googlenet_spec(block, "paper")
            for batch in (1, 32, 256):
                tiles = -(-batch * size * size // cfg.BLOCK_M)
                for c_out in (spec.ch3x3, spec.ch5x5):
                    col_blocks = -(-c_out // cfg.BLOCK_N)
                    programs, n_split = rc.reduce_conv_grid(tiles, c_out, cfg, kernel_gpu.sm_count(device))
                    if not cfg.split_columns:
                        assert (programs, n_split) == (min(slots, tiles), 1)
                        continue
                    assert 1 <= n_split <= col_blocks
                    assert programs == min(slots, tiles * n_split)
                    if cfg.split_fill == "sms":
                        if tiles * 2 > sms:
                            assert n_split == 1  # a split would put two items on some SM
                        if n_split > 1:
                            assert tiles * n_split <= sms  # one wave: no SM runs two items
                        if n_split < col_blocks:
                            assert tiles * (n_split + 1) > sms  # the largest split that fits it
                        continue
                    if n_split < col_blocks:
                        assert tiles * n_split >= slots  # a "slots" split reaches every slot
                    if n_split > 1:
                        assert tiles * (n_split - 1) < slots  # the smallest split that does it


# Aligned channels_last launches (kernels/alignment.py: channel counts and the slice offset
# multiples of 16) run a config's aligned tiles for the GPU's architecture. (N, C_in, H, W, R,
# C_out, k, relu, channels_last); written between 16 sentinel channels on each side. Every case
# has at least INTERPRETER_SMS work items at 128-pixel tiles, so tiles_for takes the aligned tiles.
ALIGNED_CASES = [
    (2, 32, 16, 16, 48, 64, 3, True, True),  # 4 tiles of 128, one column block
    (4, 16, 14, 14, 32, 160, 5, False, True),  # 7 tiles on 4 programs (a slot reused); 5 x 5 halo
                                               # of 3 reduce chunks; a partial column block
    (1, 48, 20, 24, 24, 32, 1, True, True),  # k = 1; R = 24, not a multiple of 16 (R is free)
    (2, 64, 12, 20, 144, 96, 3, True, True),  # 4 (sm_90) or 2 (sm_80) K steps; R = 144: 2 (sm_90)
                                              # or 3 (sm_80) reduced-channel blocks, the last partial
    (1, 16, 16, 16, 32, 256, 3, True, True),  # 2 tiles x 2 column splits
]
ALIGNED_AROUND = (16, 16)


def _spy_tiles(monkeypatch, arch: int) -> list:
    """Pretend to be an ``arch`` GPU with INTERPRETER_SMS SMs (on a real GPU too, so that these
    small cases take the aligned tiles) and record each launch's (BLOCK_M, BLOCK_N, L1_SCRATCH)."""
    seen: list = []
    real = rc.launch_constexprs

    def spy(config, *args):
        constexprs = real(config, *args)
        seen.append((config.BLOCK_M, config.BLOCK_N, constexprs["L1_SCRATCH"]))
        return constexprs

    monkeypatch.setattr(kernel_gpu, "sm_arch", lambda device: arch)
    monkeypatch.setattr(kernel_gpu, "sm_count", lambda device: None)
    monkeypatch.setattr(rc, "launch_constexprs", spy)
    return seen


def _aligned_tile_sets() -> list[tuple[str, int]]:
    """(config name, arch) of every distinct aligned tile set of the shipped configs, first seen."""
    seen, out = [], []
    for name, cfg in REDUCE_CONV_CONFIGS.items():
        for arch, tiles in cfg.aligned:
            if tiles not in seen:
                seen.append(tiles)
                out.append((name, arch))
    return out


ALIGNED_TILES = _aligned_tile_sets()


def test_aligned_tile_sets():
    """mma's two, and mma-l1's sm_90 tiles (its sm_80 ones are mma's)."""
    assert ALIGNED_TILES == [("mma", 80), ("mma", 90), ("mma-l1", 90)]
    assert REDUCE_CONV_CONFIGS["mma-l1"].aligned_tiles(80) == REDUCE_CONV_CONFIGS["mma"].aligned_tiles(80)


@pytest.mark.parametrize("name, arch", ALIGNED_TILES, ids=lambda v: str(v))
@pytest.mark.parametrize("case", ALIGNED_CASES, ids=lambda c: f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_r{c[4]}_o{c[5]}_k{c[6]}")
def test_aligned_tiles_match_float64(name, arch, case, gen, monkeypatch):
    seen = _spy_tiles(monkeypatch, arch)
    cfg = REDUCE_CONV_CONFIGS[name]
    tiles = cfg.aligned_tiles(arch)
    _launch_and_check(cfg, "mma", case, gen, around=ALIGNED_AROUND, what=f"reduce_conv/{name} sm_{arch} {case}")
    assert seen == [(tiles.BLOCK_M, tiles.BLOCK_N, tiles.l1_scratch)]


@pytest.mark.parametrize("name, arch", ALIGNED_TILES, ids=lambda v: str(v))
def test_aligned_tiles_show_nan_and_inf_where_the_reference_does(name, arch, gen, monkeypatch):
    """NaN and +-Inf at a tile boundary (pixel 128: the first of the second 128-pixel tile, so it
    sits in the first tile's halo), a corner and the last pixel, through the aligned tiles."""
    seen = _spy_tiles(monkeypatch, arch)
    case = ALIGNED_CASES[1]
    bad = [(0, 0, 9, 2, math.nan), (1, 3, 0, 0, math.inf), (3, 5, 13, 13, -math.inf)]
    for relu in (True, False):
        _launch_and_check(REDUCE_CONV_CONFIGS[name], "mma", (*case[:7], relu, True), gen, around=ALIGNED_AROUND,
                          bad=bad, what=f"reduce_conv/{name} sm_{arch} NaN/Inf relu={relu}")
    tiles = REDUCE_CONV_CONFIGS[name].aligned_tiles(arch)
    assert seen == [(tiles.BLOCK_M, tiles.BLOCK_N, tiles.l1_scratch)] * 2


@pytest.mark.parametrize("why", ["offset", "nchw", "channels", "few-items", "old-gpu"])
def test_launches_that_are_not_aligned_keep_the_base_tiles(why, gen, monkeypatch):
    """The aligned tiles need the aligned specialization and enough work: a slice offset of 3, NCHW,
    20 input channels, too few work items for the SMs or a GPU older than sm_80 run BLOCK_M 64."""
    seen = _spy_tiles(monkeypatch, 75 if why == "old-gpu" else 90)
    case, around = list(ALIGNED_CASES[0]), ALIGNED_AROUND
    if why == "offset":
        around = (3, 2)
    elif why == "nchw":
        case[8] = False
    elif why == "channels":
        case[1] = 20
    elif why == "few-items":
        case[0] = 1  # 256 pixels: 2 tiles of 128, one column block, on 4 SMs
    _launch_and_check(REDUCE_CONV_CONFIGS["mma"], "mma", tuple(case), gen, around=around, what=f"mma {why}")
    cfg = REDUCE_CONV_CONFIGS["mma"]
    assert seen == [(cfg.BLOCK_M, cfg.BLOCK_N, False)]


def test_tiles_for_googlenet_launches():
    """On an H200 (132 SMs): GoogLeNet's aligned launches take the sm_90 tiles (128 x 128) exactly
    where those give every SM a work item (every ch3x3 branch at batch 256; not the 7 x 7 blocks'
    "5x5" branches, 128 output channels), else keep 64 x 64; an sm_80 GPU (108 SMs) takes 128 x 64;
    configs without aligned tiles and GPUs of other generations keep theirs (unaligned launches
    never ask: test_launches_that_are_not_aligned_keep_the_base_tiles)."""
    mma = REDUCE_CONV_CONFIGS["mma"]
    for block, (_, size) in GOOGLENET_BLOCKS.items():
        spec = googlenet_spec(block, "torchvision")
        for batch in (1, 32, 256):
            m = batch * size * size
            for c_out in (spec.ch3x3, spec.ch5x5):
                got = tiles_for(mma, m, c_out, 90, 132)
                items = -(-m // 128) * -(-c_out // 128)
                assert got == (mma.aligned_tiles(90) if items >= 132 else mma)
                if batch == 256 and c_out == spec.ch3x3:
                    assert (got.BLOCK_M, got.BLOCK_N) == (128, 128)
                    assert tiles_for(mma, m, c_out, 80, 108) == mma.aligned_tiles(80)
                    assert tiles_for(mma, m, c_out, 86, 84) == mma.aligned_tiles(80)
                    assert tiles_for(mma, m, c_out, 100, 148) is mma  # not compile-checked
                assert tiles_for(REDUCE_CONV_CONFIGS["mma-64"], m, c_out, 90, 132).BLOCK_M == 64
    assert tiles_for(mma, 256 * 49, 384, 75, 80) is mma  # no aligned tiles before sm_80


def test_l1_scratch_needs_the_pipelined_loop():
    """l1_scratch shapes the flattened k x k loop's async copies (FLAT_K): a num_stages 1 config
    runs the nested loops, with plain loads, and refuses it."""
    with pytest.raises(ValueError, match="num_stages >= 2"):
        replace(REDUCE_CONV_CONFIGS["fma"], l1_scratch=True)
    assert rc.launch_constexprs(REDUCE_CONV_CONFIGS["mma-l1"].aligned_tiles(90), 3, True, "ieee")["L1_SCRATCH"]


def test_aligned_tiles_are_declared_in_order():
    base = dict(BLOCK_M=64, BLOCK_HALO=64, BLOCK_R=64, BLOCK_N=64, BLOCK_K=32, BLOCK_RK=32)
    big = ReduceConvConfig(**{**base, "BLOCK_M": 128})
    small = ReduceConvConfig(**{**base, "BLOCK_N": 32})
    cfg = ReduceConvConfig(**base, aligned=((80, small), (90, big)))
    archs = (75, 80, 86, 89, 90, 100, 120)
    assert [cfg.aligned_tiles(a) for a in archs] == [None, small, small, small, big, None, None]
    with pytest.raises(ValueError, match="once per SM generation"):
        ReduceConvConfig(**base, aligned=((80, big), (86, big)))
    with pytest.raises(ValueError, match="ascending"):
        ReduceConvConfig(**base, aligned=((90, big), (80, big)))
    with pytest.raises(ValueError, match="ascending"):
        ReduceConvConfig(**base, aligned=((90, big), (90, big)))
    with pytest.raises(ValueError, match="of their own"):
        ReduceConvConfig(**base, aligned=((90, ReduceConvConfig(**base, aligned=((90, big),))),))
