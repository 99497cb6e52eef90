"""Parity of the pointwise/pool kernel alone (kernels/pointwise_pool.py), for every shipped
pointwise config and tuning candidate, against a float64 reference.

The kernel runs as two launches (IS_POOL): branch-1 tiles (a pipelined GEMM, BLOCK_N wide) and
pool tiles (3x3/1 max-pool with the taps unrolled, BLOCK_NP wide). The shapes give each tile kind
several pixel tiles plus a partial one and several column tiles plus a partial one; outputs are
NaN-poisoned and written into a channel slice of a wider buffer whose other channels must survive.
The kernel runs on the test device (the interpreter on the CPU, compiled where there is a GPU),
the reference on the CPU. bf16 dots are wrong in the interpreter (tests/test_kernels.py), so fp16
stands in for the half types; fp32 runs in both dot precisions.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import fused_inception.kernels.gpu as kernel_gpu
import fused_inception.kernels.pointwise_pool as pointwise_mod
from block_helpers import DEVICE
from fused_inception.kernels.configs import (POINTWISE_CONFIGS, PointwiseConfig, candidate_names, config_by_name,
                                             tiles_for)
from fused_inception.tolerances import assert_close, poisoned, tolerance_key

SENTINEL = 12345.0


def reference(x64: torch.Tensor, w64: torch.Tensor, b64: torch.Tensor, ch1x1: int, relu: bool) -> torch.Tensor:
    """float64 [N, ch1x1 + pool_proj, H, W]: x @ W[:, :ch1x1] + b, then maxpool3x3/1 (-inf
    padding, NaN propagating) @ W[:, ch1x1:] + b, each with the optional ReLU."""
    pooled = F.max_pool2d(x64, 3, stride=1, padding=1)
    y1 = torch.einsum("nchw,cd->ndhw", x64, w64[:, :ch1x1])
    yp = torch.einsum("nchw,cd->ndhw", pooled, w64[:, ch1x1:])
    y = torch.cat([y1, yp], 1) + b64[None, :, None, None]
    return F.relu(y) if relu else y


def run_case(config, dtype, precision, shape, ch1x1, pool_proj, channels_last, relu, gen, negative=False,
             around=(3, 2, 1), fresh=False):
    """Launch the kernel on a NaN-poisoned buffer with channels around the block's slice (``around``:
    how many before branch 1, between the branches and after the pool projection) and compare both
    branches with the float64 reference. ``fresh``: input and output allocated in their memory
    format (torch.empty), not converted to it: for size-1 dims the strides differ."""
    n, c_in, h, w = shape
    x64 = torch.randn(shape, generator=gen, dtype=torch.float64)
    if negative:
        # all-negative input: a 0-padded pool would give 0 at the borders
        x64 = -x64.abs() - 0.5
    w64 = torch.randn(c_in, ch1x1 + pool_proj, generator=gen, dtype=torch.float64) / c_in ** 0.5
    b64 = torch.randn(ch1x1 + pool_proj, generator=gen, dtype=torch.float64)
    x = x64.to(dtype)
    wt = w64.to(dtype)
    # the reference sees the rounded operands the kernel sees
    ref = reference(x.double(), wt.double(), b64.float().double(), ch1x1, relu)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if fresh:
        x = torch.empty(shape, dtype=dtype, device=DEVICE, memory_format=fmt).copy_(x)
    else:
        x = x.to(DEVICE).contiguous(memory_format=fmt)
    before, gap, after = around
    total = before + ch1x1 + gap + pool_proj + after
    if fresh:
        out = torch.empty((n, total, h, w), dtype=dtype, device=DEVICE, memory_format=fmt).fill_(float("nan"))
    else:
        out = poisoned((n, total, h, w), dtype, DEVICE, fmt)
    keep = torch.ones(total, dtype=torch.bool)
    keep[before:before + ch1x1] = False
    keep[before + ch1x1 + gap:before + ch1x1 + gap + pool_proj] = False
    out[:, keep.to(DEVICE)] = SENTINEL
    pointwise_mod.launch_pointwise_pool(x, wt.contiguous().to(DEVICE), b64.float().to(DEVICE), ch1x1, out, before,
                                        before + ch1x1 + gap, relu, precision, config)
    out = out.cpu()
    key = tolerance_key(dtype, tf32=precision == "tf32")
    what = f"{config} {dtype} {precision} {tuple(shape)} cl={channels_last} relu={relu}"
    assert_close(out[:, before:before + ch1x1], ref[:, :ch1x1], key, f"branch 1 {what}")
    assert_close(out[:, before + ch1x1 + gap:before + ch1x1 + gap + pool_proj], ref[:, ch1x1:], key, f"pool {what}")
    assert bool((out[:, keep] == SENTINEL).all()), f"channels outside the slices were written: {what}"


def _cases():
    """(config name, dtype, precision) for every shipped pointwise config and tuning candidate:
    the dot classes' candidates, fp16 for "mma", fp32 for "tf32" and "fma"."""
    cases = []
    for dtype, precision in ((torch.float16, "ieee"), (torch.float32, "tf32"), (torch.float32, "ieee")):
        for name in candidate_names("pointwise_pool", str(dtype).removeprefix("torch."), precision):
            cases.append(pytest.param(name, dtype, precision, id=f"{name}-{dtype}-{precision}".replace("torch.", "")))
    return cases


def test_every_shipped_config_is_covered():
    covered = {p.values[0] for p in _cases()}
    assert covered == set(POINTWISE_CONFIGS)


@pytest.mark.parametrize(("name", "dtype", "precision"), _cases())
def test_config_parity(name, dtype, precision, gen, monkeypatch):
    """Odd widths (branch 1: 2 BLOCK_N tiles + a partial one; pool: a BLOCK_NP tile + a partial
    one), input channels spanning several K steps of both kinds plus a partial one, and pixels
    spanning two BLOCK_M tiles plus a partial one that crosses an image boundary."""
    cfg = config_by_name("pointwise_pool", name)
    ch1x1 = 2 * cfg.BLOCK_N + 24
    pool_proj = cfg.BLOCK_NP + 24
    c_in = 2 * max(cfg.BLOCK_K, cfg.BLOCK_KP) + 8
    hw = (5, 7)
    n = -(-(2 * cfg.BLOCK_M + 9) // (hw[0] * hw[1]))
    for channels_last in (True, False):
        run_case(cfg, dtype, precision, (n, c_in, *hw), ch1x1, pool_proj, channels_last, relu=True, gen=gen)
    # the aligned channels_last specialization (taps clamped where the config does; wide tiles
    # where it has them and pool_proj fits one): channel counts and offsets multiples of 16
    seen = _record_modes(monkeypatch)
    run_case(cfg, dtype, precision, (n, c_in + 8, *hw), ch1x1 - 8, pool_proj - 8, True, relu=True, gen=gen,
             around=(16, 0, 16))
    assert seen[-1] == (True, cfg.clamp_taps, pointwise_mod.wide_pool_tiles(cfg, pool_proj - 8, cfg.clamp_taps))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize(("ch1x1", "pool_proj"), [(16, 24), (48, 16), (24, 48)])
def test_odd_widths_relu_off_negative_input(ch1x1, pool_proj, channels_last, gen):
    """Widths below and between tile sizes, ReLU off (signed outputs), all-negative input (the
    pool's -inf padding, not 0, decides the borders)."""
    cfg = POINTWISE_CONFIGS["default"]
    run_case(cfg, torch.float16, "ieee", (2, 40, 6, 5), ch1x1, pool_proj, channels_last, relu=False, gen=gen,
             negative=True)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw-masked", "channels_last-clamped"])
def test_nan_propagates_through_the_pool_and_branch_1(channels_last, gen, monkeypatch):
    """NaN input pixels (inside, at a corner, on the last row): branch 1 is NaN at those pixels
    only, the pool projection at every pixel whose 3x3 window holds one (max propagates NaN, as
    torch's max_pool2d), with taps masked (NCHW) and clamped (aligned channels_last)."""
    cfg = POINTWISE_CONFIGS["default"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(1, 16, 6, 6, generator=gen).to(torch.float16)
    for c, h, w in ((3, 2, 4), (5, 0, 0), (9, 5, 2)):
        x[0, c, h, w] = float("nan")
    w = (torch.randn(16, 16 + 32, generator=gen) / 4).to(torch.float16)
    b = torch.randn(48, generator=gen)
    out = poisoned((1, 48, 6, 6), torch.float16, DEVICE, fmt)
    seen = _record_modes(monkeypatch)
    pointwise_mod.launch_pointwise_pool(x.to(DEVICE).contiguous(memory_format=fmt), w.to(DEVICE), b.to(DEVICE), 16, out,
                                        0, 16, False, "ieee", cfg)
    out = out.cpu()
    assert seen[-1] == (True, channels_last, False)
    ref = reference(x.double(), w.double(), b.double(), 16, False)
    assert torch.equal(out.isnan(), ref.isnan())
    assert bool(out[0, :16, 2, 4].isnan().all()) and bool(out[0, 16:, 1:4, 3:6].isnan().all())
    assert bool(out[0, 16:, 0:2, 0:2].isnan().all()) and bool(out[0, 16:, 4:6, 1:4].isnan().all())
    finite = ~ref.isnan()
    assert_close(out[finite].reshape(1, -1), ref[finite].reshape(1, -1), "float16", "finite outputs")


def test_grid_puts_a_pixel_tiles_column_tiles_side_by_side():
    """One program per (pixel tile, column tile), column tiles of a pixel tile adjacent."""
    cfg = POINTWISE_CONFIGS["default"]
    assert pointwise_mod.pointwise_grid(100, 130, False, cfg) == (2 * 3, 3)
    assert pointwise_mod.pointwise_grid(100, 32, True, cfg) == (2 * 1, 1)
    assert pointwise_mod.pointwise_grid(64, 128, True, cfg) == (128 // cfg.BLOCK_NP, 128 // cfg.BLOCK_NP)


def _record_modes(monkeypatch) -> list[tuple[bool, bool, bool]]:
    """(IS_POOL, clamped, wide) of every launch the launcher makes from now on."""
    seen = []
    build = pointwise_mod.launch_constexprs

    def spy(config, pool, relu, input_precision, clamped=False, wide=False):
        seen.append((pool, clamped, wide))
        return build(config, pool, relu, input_precision, clamped, wide)

    monkeypatch.setattr(pointwise_mod, "launch_constexprs", spy)
    return seen


@pytest.mark.parametrize("negative", [False, True], ids=["randn", "negative"])
def test_wide_pool_tiles_parity(negative, gen, monkeypatch):
    """The default's 128-wide pool tiles, as an aligned channels_last launch takes them (taps
    clamped into the image): pool_proj 96 (one partial wide tile), three K steps, pixel tiles
    crossing an image boundary plus a partial one, slices at 16-aligned channel offsets in a
    NaN-poisoned buffer, ReLU off so that signs and the -inf pool padding show."""
    cfg = POINTWISE_CONFIGS["default"]
    assert cfg.BLOCK_NP < 96 <= cfg.BLOCK_NP_WIDE
    seen = _record_modes(monkeypatch)
    run_case(cfg, torch.float16, "ieee", (2, 48, 5, 7), 16, 96, channels_last=True, relu=False, gen=gen,
             negative=negative, around=(16, 0, 16))
    assert seen == [(False, False, False), (True, True, True)]


@pytest.mark.parametrize(("shape", "pool_proj", "around", "channels_last", "aligned"), [
    ((2, 40, 5, 7), 96, (16, 0, 16), True, False),  # input channels not a multiple of 16
    ((2, 48, 5, 7), 96, (3, 2, 1), True, False),  # unaligned output channel offsets
    ((2, 48, 5, 7), 96, (16, 0, 16), False, False),  # NCHW
    ((2, 48, 5, 7), 144, (16, 0, 16), True, True),  # wider than one wide tile
    ((2, 48, 5, 7), 48, (16, 0, 16), True, True),  # one BLOCK_NP tile covers it
    ((3, 48, 1, 7), 96, (16, 0, 16), True, True),  # one row: the up and down taps clamp to it
    ((3, 48, 5, 1), 96, (16, 0, 16), True, True),  # one column: the left and right taps clamp to it
    # 1x1 images converted to channels_last (.contiguous) keep unit H/W strides: not aligned
    ((2, 48, 1, 1), 96, (16, 0, 16), True, False),
], ids=["c_in-40", "offsets", "nchw", "pool-144", "pool-48", "one-row", "one-column", "1x1-converted"])
def test_pool_launch_modes(shape, pool_proj, around, channels_last, aligned, gen, monkeypatch):
    """Launches outside the aligned specialization keep -inf masked taps and BLOCK_NP tiles;
    aligned ones clamp their taps, on a wide tile where one fits pool_proj, else on BLOCK_NP
    tiles. All stay exact, with ReLU off and all-negative input (the padding decides borders)."""
    cfg = POINTWISE_CONFIGS["default"]
    seen = _record_modes(monkeypatch)
    run_case(cfg, torch.float16, "ieee", shape, 16, pool_proj, channels_last, relu=False, gen=gen, around=around,
             negative=True)
    wide = aligned and pool_proj == 96  # the aligned launches one wide tile fits
    assert seen == [(False, False, False), (True, aligned, wide)]


def test_aligned_1x1_images_clamp_every_tap_onto_the_centre(gen, monkeypatch):
    """1x1 images allocated channels_last (torch.empty) have aligned strides: all eight outer
    taps clamp onto the centre pixel, on a wide tile."""
    seen = _record_modes(monkeypatch)
    run_case(POINTWISE_CONFIGS["default"], torch.float16, "ieee", (3, 48, 1, 1), 16, 96, True, relu=False, gen=gen,
             negative=True, around=(16, 0, 16), fresh=True)
    assert seen == [(False, False, False), (True, True, True)]


def test_aligned_channels_last_needs_aligned_pointers():
    """A view one element into its storage is not 16-byte aligned: no wide tiles."""
    x = torch.zeros(2 * 48 * 5 * 7 + 1, dtype=torch.float16)[1:].view(2, 5, 7, 48).permute(0, 3, 1, 2)
    ints = dict(M=70, H=5, W=7, C_IN=48, C1=16, CP=96, sx_n=x.stride(0), sx_c=x.stride(1), sx_h=x.stride(2),
                sx_w=x.stride(3), so_n=16, so_c=1, so_h=16, so_w=16, out_c1=0, out_cp=16)
    assert x.stride(1) == 1
    assert not pointwise_mod.aligned_channels_last(ints, (x,))
    assert pointwise_mod.aligned_channels_last(ints, (x.clone(memory_format=torch.channels_last),))
    assert not pointwise_mod.aligned_channels_last({**ints, "C1": 24}, (x.clone(),))
    # strides past int32 specialize as i64, which compile-check does not compile
    assert not pointwise_mod.aligned_channels_last({**ints, "sx_n": 2**31}, (x.clone(),))


def test_wide_tiles_only_from_configs_that_have_them():
    cfg = POINTWISE_CONFIGS["np64"]
    assert not pointwise_mod.wide_pool_tiles(cfg, 96, aligned=True)
    with pytest.raises(ValueError, match="masked"):
        pointwise_mod.launch_constexprs(cfg, True, True, "ieee", clamped=True)
    with pytest.raises(ValueError, match="clamped taps only"):
        PointwiseConfig(64, 64, 32, BLOCK_NP=64, BLOCK_NP_WIDE=128, clamp_taps=False)
    assert not pointwise_mod.wide_pool_tiles(POINTWISE_CONFIGS["default"], 96, aligned=False)
    with pytest.raises(ValueError, match="no wide pool tiles"):
        pointwise_mod.launch_constexprs(POINTWISE_CONFIGS["np32"], True, True, "ieee", clamped=True, wide=True)
    with pytest.raises(ValueError, match="pool launches only"):
        pointwise_mod.launch_constexprs(POINTWISE_CONFIGS["default"], False, True, "ieee", clamped=True)
    with pytest.raises(ValueError, match="clamped"):
        pointwise_mod.launch_constexprs(POINTWISE_CONFIGS["default"], True, True, "ieee", wide=True)
    assert pointwise_mod.pointwise_grid(64, 128, True, POINTWISE_CONFIGS["default"], wide=True) == (1, 1)


def _record_branch1_tiles(monkeypatch, arch: int) -> list[tuple[int, int, int]]:
    """Pretend to be an ``arch`` GPU with INTERPRETER_SMS SMs (on a real GPU too, so that these
    small cases can take the aligned tiles) and record every branch-1 launch's (BLOCK_M, BLOCK_N,
    num_stages) from now on."""
    seen = []
    build = pointwise_mod.launch_constexprs

    def spy(config, pool, *args):
        if not pool:
            seen.append((config.BLOCK_M, config.BLOCK_N, config.num_stages))
        return build(config, pool, *args)

    monkeypatch.setattr(kernel_gpu, "sm_arch", lambda device: arch)
    monkeypatch.setattr(kernel_gpu, "sm_count", lambda device: None)
    monkeypatch.setattr(pointwise_mod, "launch_constexprs", spy)
    return seen


@pytest.mark.parametrize(("relu", "negative"), [(True, False), (False, True)], ids=["relu-randn", "signed-negative"])
def test_aligned_branch1_tiles_parity(relu, negative, gen, monkeypatch):
    """The default's aligned branch-1 tiles (128 x 128 on sm_90) as an aligned channels_last launch
    takes them: 144 branch-1 columns (a full and a partial column tile), 80 input channels (two
    K steps of 32 and a partial one), 3 x 95 = 285 pixels (two 128-pixel tiles crossing image
    boundaries and a partial one), NaN-poisoned output between sentinel channels."""
    cfg = POINTWISE_CONFIGS["default"]
    tiles = cfg.aligned_tiles(90)
    seen = _record_branch1_tiles(monkeypatch, 90)
    run_case(cfg, torch.float16, "ieee", (3, 80, 5, 19), 144, 32, channels_last=True, relu=relu, gen=gen,
             negative=negative, around=(16, 0, 16))
    assert seen == [(tiles.BLOCK_M, tiles.BLOCK_N, tiles.num_stages)]
    assert (tiles.BLOCK_M, tiles.BLOCK_N) == (128, 128)


def test_aligned_branch1_tiles_show_nan_and_inf_where_the_reference_does(gen, monkeypatch):
    """NaN and +-Inf input pixels, one at the first pixel of the second 128-pixel tile: branch 1
    is NaN/Inf exactly where the float64 reference is, through the aligned tiles."""
    cfg = POINTWISE_CONFIGS["default"]
    seen = _record_branch1_tiles(monkeypatch, 90)
    x = torch.randn(2, 32, 10, 16, generator=gen).to(torch.float16)
    x[0, 3, 8, 0] = float("nan")  # pixel 128
    x[1, 7, 0, 5] = float("inf")
    x[1, 9, 9, 15] = -float("inf")
    w = (torch.randn(32, 144 + 16, generator=gen) / 6).to(torch.float16)
    b = torch.randn(160, generator=gen)
    out = poisoned((2, 160, 10, 16), torch.float16, DEVICE, torch.channels_last)
    pointwise_mod.launch_pointwise_pool(x.to(DEVICE).contiguous(memory_format=torch.channels_last), w.to(DEVICE),
                                        b.to(DEVICE), 144, out, 0, 144, False, "ieee", cfg)
    out = out.cpu()[:, :144]
    ref = reference(x.double(), w.double(), b.double(), 144, False)[:, :144]
    assert seen == [(128, 128, cfg.aligned_tiles(90).num_stages)]
    assert torch.equal(out.isnan(), ref.isnan())
    assert torch.equal(out.isinf(), ref.isinf()) and torch.equal(out[ref.isinf()], ref[ref.isinf()].to(out.dtype))
    finite = ref.isfinite()
    assert_close(out[finite].reshape(1, -1), ref[finite].reshape(1, -1), "float16", "finite outputs")


@pytest.mark.parametrize("why", ["offset", "nchw", "channels", "few-programs", "sm_80"])
def test_branch1_launches_that_are_not_aligned_keep_the_base_tiles(why, gen, monkeypatch):
    """The aligned branch-1 tiles need the aligned specialization, enough programs for the SMs and
    an sm_90 GPU: a slice offset of 3, NCHW, 72 input channels, 1 image (95 pixels: one pixel tile
    x 2 column tiles on 4 SMs) or an sm_80 GPU (compiled clean, not modelled) run 64 x 64."""
    cfg = POINTWISE_CONFIGS["default"]
    seen = _record_branch1_tiles(monkeypatch, 80 if why == "sm_80" else 90)
    shape, around, channels_last = [3, 80, 5, 19], (16, 0, 16), True
    if why == "offset":
        around = (3, 2, 1)
    elif why == "nchw":
        channels_last = False
    elif why == "channels":
        shape[1] = 72
    elif why == "few-programs":
        shape[0] = 1
    run_case(cfg, torch.float16, "ieee", tuple(shape), 144, 32, channels_last, relu=True, gen=gen, around=around)
    assert seen == [(cfg.BLOCK_M, cfg.BLOCK_N, cfg.num_stages)]


def test_aligned_branch1_tiles_keep_the_pool_fields():
    """Pool launches run the config's own pool fields and branch-1 code does not use them, so an
    aligned branch-1 entry that changes one (each on its own) is refused rather than shipped as a
    config that says something other than what runs."""
    # BLOCK_NP_WIDE 0, so that clamp_taps can change alone (wide pool tiles need clamped taps)
    base = PointwiseConfig(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, BLOCK_NP=64, BLOCK_KP=16, num_stages=2)
    tiles = replace(base, BLOCK_M=128, BLOCK_N=128, num_stages=3)
    assert replace(base, aligned=((90, tiles),)).aligned_tiles(90) == tiles
    for field, value in (("BLOCK_NP", 32), ("BLOCK_KP", 32), ("BLOCK_NP_WIDE", 128), ("clamp_taps", False)):
        with pytest.raises(ValueError, match=rf"pool fields \['{field}'\]"):
            replace(base, aligned=((90, replace(tiles, **{field: value})),))


def test_branch1_tiles_for_googlenet_launches():
    """On an H200 (132 SMs, sm_90): GoogLeNet's aligned branch-1 launches take 128 x 128 where
    those tiles give every SM a program: every block at batch 256, 3a and 3b (196 programs) at
    batch 32, none at batch 1; sm_80 GPUs and configs without aligned tiles keep theirs (unaligned
    launches never ask: test_branch1_launches_that_are_not_aligned_keep_the_base_tiles)."""
    from fused_inception.spec import GOOGLENET_BLOCKS, googlenet_spec

    cfg = POINTWISE_CONFIGS["default"]
    takes = {256: set(GOOGLENET_BLOCKS), 32: {"3a", "3b"}, 1: set()}
    for block, (_, size) in GOOGLENET_BLOCKS.items():
        c1 = googlenet_spec(block, "torchvision").ch1x1
        for batch, blocks in takes.items():
            m = batch * size * size
            got = tiles_for(cfg, m, c1, 90, 132)
            assert got is (cfg.aligned_tiles(90) if block in blocks else cfg), (block, batch)
            assert tiles_for(cfg, m, c1, 80, 108) is cfg
            for name in ("np64", "b64"):
                assert tiles_for(POINTWISE_CONFIGS[name], m, c1, 90, 132) is POINTWISE_CONFIGS[name]


def test_pointwise_aligned_tiles_are_declared_in_order():
    big = PointwiseConfig(128, 128, 32, num_stages=3)
    with pytest.raises(ValueError, match="once per SM generation"):
        PointwiseConfig(64, 64, 32, aligned=((90, big), (90, big)))
    with pytest.raises(ValueError, match="own"):
        PointwiseConfig(64, 64, 32, aligned=((90, PointwiseConfig(128, 128, 32, aligned=((90, big),))),))
    cfg = PointwiseConfig(64, 64, 32, aligned=((90, big),))
    assert [cfg.aligned_tiles(a) for a in (80, 86, 90, 100)] == [None, None, big, None]
