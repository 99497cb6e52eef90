"""Ahead-of-time compile check (no GPU): shipped kernel variants compile for sm_80 and sm_90
without spills, within shared memory, on tensor cores; broken variants are reported.

The suite runs with TRITON_INTERPRET=1 (tests/conftest.py), so the kernels in this process are
interpreted; compile_check compiles in subprocesses with the interpreter off. The full list is
``python -m fused_inception compile-check --arch 80,90``; here a subset that still covers both
kernels, every shipped config (defaults and tuning candidates), every dtype (bf16 too), k = 3
and 5, both memory formats, ReLU off, and both archs.

Launched specializations (what GoogLeNet's blocks really run: ints equal to 1 constexpr, ints
divisible by 16 with tt.divisibility 16): their derivation is checked against triton's own JIT
binder on every recorded launch, their coverage of the 9 blocks x 2 variants, and one per kernel
and arch is compiled.

The stem's epilogue (bn_relu_pool: no configs, no dot) has launched specializations only, one per
dtype, memory format and conv unit: their recording from the library's stem epilogue on the
torchvision stem and their derivation are checked the same way, its rows are held to every rule but the
tensor-core ones, and one is compiled per arch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest
import torch
import triton

from fused_inception.tools.compile_check import command as cc
from fused_inception.tools.compile_check import aot, compiling, report
from fused_inception.tools.plan.schedules import (COMPILED_POINTWISE, COMPILED_POINTWISE_AC3B22C, COMPILED_WITH,
                                                   pointwise_pipelined)
from fused_inception.tools.plan.shapes import block_shapes
from fused_inception.kernels import gpu as kernel_gpu
from fused_inception.kernels import pointwise_pool as pointwise_mod
from fused_inception.kernels import reduce_conv as reduce_conv_mod
from fused_inception.spec import GOOGLENET_BLOCKS
from fused_inception.kernels.configs import (
    DTYPES,
    INPUT_PRECISIONS,
    POINTWISE_CONFIGS,
    REDUCE_CONV_CONFIGS,
    PointwiseConfig,
    default_configs,
    launchable_configs,
)

# (arch, kernel, config, dtype, precision, ksize, relu, layout)
SUBSET = [
    (80, "pointwise_pool", "b64", "float32", "tf32", None, True, "nhwc"),
    (90, "pointwise_pool", "fma", "float32", "ieee", None, False, "nhwc"),
    (80, "pointwise_pool", "default", "float16", "ieee", None, True, "nchw"),
    (90, "pointwise_pool", "default", "bfloat16", "ieee", None, True, "nhwc"),
    (90, "reduce_conv", "tf32", "float32", "tf32", 3, True, "nhwc"),
    (80, "reduce_conv", "fma", "float32", "ieee", 5, True, "nchw"),
    (90, "reduce_conv", "fma", "float32", "ieee", 3, True, "nhwc"),
    (80, "reduce_conv", "mma", "bfloat16", "ieee", 5, True, "nhwc"),
    (90, "reduce_conv", "tf32", "float32", "tf32", 3, False, "nhwc"),
    (80, "reduce_conv", "mma", "float16", "ieee", 3, True, "nhwc"),
    # tuning candidates (a GPU's tuned file may launch any of them)
    (80, "pointwise_pool", "n32", "float32", "tf32", None, True, "nchw"),
    (90, "pointwise_pool", "s4", "bfloat16", "ieee", None, True, "nchw"),
    (80, "pointwise_pool", "n32s4", "bfloat16", "ieee", None, True, "nhwc"),
    (90, "pointwise_pool", "fma-n32", "float32", "ieee", None, True, "nchw"),
    (80, "pointwise_pool", "fma", "float32", "ieee", None, True, "nhwc"),
    (90, "pointwise_pool", "np32", "float16", "ieee", None, True, "nhwc"),
    (80, "pointwise_pool", "np64", "float16", "ieee", None, True, "nhwc"),
    (80, "reduce_conv", "mma-p2", "bfloat16", "ieee", 3, True, "nchw"),
    (90, "reduce_conv", "mma-slots", "float16", "ieee", 5, True, "nhwc"),
    (80, "reduce_conv", "mma-64", "bfloat16", "ieee", 3, True, "nhwc"),
    (90, "reduce_conv", "mma-l1", "float16", "ieee", 3, True, "nhwc"),
]

SHIPPED = {("pointwise_pool", n) for n in POINTWISE_CONFIGS} | {("reduce_conv", n) for n in REDUCE_CONV_CONFIGS}
# the kernels of the Inception blocks (configs, generic variants, aligned tiles); the stem's
# bn_relu_pool has none of these
BLOCK_KERNELS = ("pointwise_pool", "reduce_conv")


def _variant(kernel, config, dtype, precision, ksize, relu, layout, clamped=False, wide=False,
             aligned_arch=None) -> aot.LaunchVariant:
    """The first launch variant with these fields (pointwise_pool: branch 1 unless ``clamped``,
    which is the clamped pool variant, with wide tiles if ``wide``; either kernel: the config's own
    tiles unless ``aligned_arch``, which picks its aligned tiles of that arch, branch 1's for
    pointwise_pool)."""
    key = (kernel, config, dtype, precision, ksize, relu, layout, clamped, wide, aligned_arch)
    for v in aot.launch_variants():
        if (v.kernel, v.config_name, v.dtype, v.input_precision, v.ksize, v.relu, v.layout, v.clamped,
                v.wide_pool, v.arch) == key:
            return v
    raise LookupError(f"{key} is not a launch variant")


def _id(case) -> str:
    arch, kernel, config, dtype, prec, k, relu, layout = case
    ks = f"-k{k}" if k else ""
    return f"sm{arch}-{kernel}-{config}-{dtype}-{prec}{ks}-{'relu' if relu else 'norelu'}-{layout}"


@pytest.fixture(scope="module")
def subset_rows() -> dict[str, dict]:
    rows = {}
    for arch in sorted({c[0] for c in SUBSET}):
        cases = [c for c in SUBSET if c[0] == arch]
        got = compiling.check([arch], [_variant(*c[1:]) for c in cases])
        assert len(got) == len(cases)
        rows.update({_id(c): r for c, r in zip(cases, got)})
    return rows


def test_subset_covers_kernels_configs_dtypes_ksizes_archs():
    variants = [_variant(*c[1:]) for c in SUBSET]
    assert {(v.kernel, v.config_name) for v in variants} == SHIPPED
    assert {v.dtype for v in variants} == set(DTYPES)
    assert {v.ksize for v in variants if v.kernel == "reduce_conv"} == {3, 5}
    assert {c[0] for c in SUBSET} == {80, 90}
    assert {v.layout for v in variants} == set(aot.LAYOUTS)
    assert {v.relu for v in variants} == {True, False}


@pytest.mark.parametrize("case", SUBSET, ids=_id)
def test_variant_compiles_without_spills_on_tensor_cores(subset_rows, case):
    row = subset_rows[_id(case)]
    assert row["error"] is None, row["error"]
    assert 0 < row["registers"] <= 255
    spills = {k: row[k] for k in ("stack", "local", "spill_stores", "spill_loads")}
    assert not any(spills.values()), f"spills: {spills}"
    smem = row["shared"] + row["static_shared"]
    assert smem <= compiling.SMEM_LIMIT[case[0]]
    if row["expects_mma"]:
        assert row["hmma"] + row["hgmma"] > 0, "no HMMA/HGMMA in the SASS"
    assert report.row_failures(row) == []


# the aligned pool launches' one specialization (pointwise_pool.aligned_channels_last: taps
# clamped): with wide tiles, the heaviest (fp32 TF32 on sm_80) and the default dtype on sm_90;
# with 64-wide tiles, bf16 on sm_90. Without their divisibility hints the clamped taps spilled
# 16 B and the wide tiles 350-690 B.
ALIGNED_SUBSET = [(80, "float32", "tf32", True), (90, "bfloat16", "ieee", True), (90, "bfloat16", "ieee", False)]


@pytest.mark.parametrize(("arch", "dtype", "precision", "wide"), ALIGNED_SUBSET, ids=lambda c: str(c))
def test_aligned_pool_variant_compiles_without_spills_pipelined(arch, dtype, precision, wide):
    name = "b64" if precision == "tf32" else "default"  # the default of the dtype and precision
    v = _variant("pointwise_pool", name, dtype, precision, None, True, "nhwc", clamped=True, wide=wide)
    cfg = POINTWISE_CONFIGS[name]
    values = aot.constexpr_values(v)
    assert v.pool and values["CLAMP_TAPS"] and values["BLOCK_NP"] == (cfg.BLOCK_NP_WIDE if wide else cfg.BLOCK_NP)
    keys = aot._int_keys(v)
    ones = set(pointwise_mod.ALIGNED_UNIT_INTS) | ({"n_col_tiles"} if wide else set())
    assert {n for n, k in keys.items() if k == "1"} == ones
    assert {n for n, k in keys.items() if k == "i32"} == set(pointwise_mod.ALIGNED_FREE_INTS) - ones
    assert all(k == "i32:D" for n, k in keys.items() if n not in set(pointwise_mod.ALIGNED_FREE_INTS) | ones)
    (row,) = compiling.check([arch], [v])
    assert report.row_failures(row) == []
    assert row["ldgsts"] > 0 and (row["hgmma"] > 0) == (arch >= 90) and (row["hmma"] > 0) == (arch < 90)


# the aligned reduce_conv tiles (ReduceConvConfig.aligned, configs.tiles_for): the default's
# 128 x 64 (sm_80) and 128 x 128 (sm_90) tiles, and mma-l1's sm_90 128 x 64 with 8-byte scratch
# copies (l1_scratch), each compiled for its arch as the one aligned specialization
# (reduce_conv.aligned_channels_last). Generic variants of those tiles spilled 928-3896 B.
ALIGNED_RC_SUBSET = [("mma", 80, "bfloat16", 5), ("mma", 90, "bfloat16", 3), ("mma", 90, "float16", 5),
                     ("mma-l1", 90, "bfloat16", 3)]


@pytest.mark.parametrize(("config", "arch", "dtype", "ksize"), ALIGNED_RC_SUBSET, ids=lambda c: str(c))
def test_aligned_reduce_conv_tiles_compile_without_spills_pipelined(config, arch, dtype, ksize):
    v = _variant("reduce_conv", config, dtype, "ieee", ksize, True, "nhwc", aligned_arch=arch)
    assert v.aligned and v.config == REDUCE_CONV_CONFIGS[config].aligned_tiles(arch)
    assert v.compiled_for(arch) and not v.compiled_for(170 - arch)  # 80 <-> 90
    keys = aot._int_keys(v)
    assert {n for n, k in keys.items() if k == "1"} == set(reduce_conv_mod.ALIGNED_UNIT_INTS)
    assert {n for n, k in keys.items() if k == "i32"} == set(reduce_conv_mod.ALIGNED_FREE_INTS)
    assert all(k == "i32:D" for n, k in keys.items()
               if n not in set(reduce_conv_mod.ALIGNED_FREE_INTS) | set(reduce_conv_mod.ALIGNED_UNIT_INTS))
    (row,) = compiling.check([arch], [v])
    assert report.row_failures(row) == []
    assert row["resident_warps"] >= v.config.programs_per_sm * v.config.num_warps
    assert row["ldgsts"] > 0 and (row["hgmma"] > 0) == (arch >= 90) and (row["hmma"] > 0) == (arch < 90)
    assert compiling.check([170 - arch], [v]) == []  # the other arch does not run these tiles


def test_aligned_reduce_conv_variants_only_channels_last_tiles_per_arch():
    """Every config with aligned tiles has, for each dtype and precision it launches, a channels_last
    variant per (arch, tiles) entry, and no other variant is aligned."""
    variants = aot.launch_variants(["reduce_conv"])
    aligned = [v for v in variants if v.aligned]
    assert aligned and all(v.layout == "nhwc" and v.arch is not None for v in aligned)
    assert all(v.arch is None for v in variants if not v.aligned)
    want = {(d, p, name, arch, tiles) for k, d, p, cfg in launchable_configs() if k == "reduce_conv"
            for name in [next(n for n, c in REDUCE_CONV_CONFIGS.items() if c == cfg)] for arch, tiles in cfg.aligned}
    assert {(v.dtype, v.input_precision, v.config_name, v.arch, v.config) for v in aligned if v.relu} == want


def test_aligned_branch1_tiles_compile_without_spills_pipelined():
    """The default pointwise config's sm_90 branch-1 tiles (128 x 128), bf16, compiled as the one
    aligned specialization they run in: no spill, async copies, wgmma only, and 2 programs x 4 warps
    resident per SM, the residency the cost model charges them (plan's pointwise schedules);
    sm_80 does not run them."""
    v = _variant("pointwise_pool", "default", "bfloat16", "ieee", None, True, "nhwc", aligned_arch=90)
    assert v.pool is False and v.config == POINTWISE_CONFIGS["default"].aligned_tiles(90)
    assert v.compiled_for(90) and not v.compiled_for(80)
    keys = aot._int_keys(v)
    assert {n for n, k in keys.items() if k == "1"} == set(pointwise_mod.ALIGNED_UNIT_INTS)
    assert {n for n, k in keys.items() if k == "i32"} == set(pointwise_mod.ALIGNED_FREE_INTS)
    (row,) = compiling.check([90], [v])
    assert report.row_failures(row) == []
    assert row["ldgsts"] > 0 and row["hgmma"] > 0 and row["hmma"] == 0
    # the residency plan charges these tiles (3b at batch 256 takes them), in warps
    spec, h, w = block_shapes("torchvision")["3b"]
    b1, _ = pointwise_pipelined("3b", spec, 256, h, w, "bfloat16")
    assert "aligned" in b1.detail and row["resident_warps"] >= b1.resident * v.config.num_warps
    assert compiling.check([80], [v]) == []


def test_aligned_pointwise_variants_only_channels_last_branch1_per_arch():
    """Every pointwise config with aligned tiles has, for each dtype and precision it launches, a
    channels_last branch-1 variant per (arch, tiles) entry; no pool variant and no other variant
    is aligned."""
    variants = aot.launch_variants(["pointwise_pool"])
    aligned = [v for v in variants if v.aligned]
    assert aligned and all(v.layout == "nhwc" and v.pool is False and not v.clamped for v in aligned)
    want = {(d, p, name, arch, tiles) for k, d, p, cfg in launchable_configs() if k == "pointwise_pool"
            for name in [next(n for n, c in POINTWISE_CONFIGS.items() if c == cfg)] for arch, tiles in cfg.aligned}
    assert {(v.dtype, v.input_precision, v.config_name, v.arch, v.config) for v in aligned if v.relu} == want
    assert {(d, p) for d, p, *_ in want} == {("float16", "ieee"), ("bfloat16", "ieee")}  # not TF32


def test_launched_aligned_branch1_variants_narrow_the_aligned_generic():
    """Every branch-1 launch GoogLeNet makes with aligned tiles is the aligned generic variant or
    narrower, only sm_90 records them, and at batch 256 every block's fp16/bf16 channels_last
    branch 1 takes them."""
    generic = {(v.dtype, v.relu, v.arch): aot._int_keys(v)
               for v in aot.launch_variants(["pointwise_pool"]) if v.aligned}
    launched = aot.googlenet_launch_variants(["pointwise_pool"], batches=[1, 256], gpus=[None])
    aligned = [v for v in launched if v.aligned]
    assert {v.arch for v in aligned} == {90}
    for v in aligned:
        g = generic[(v.dtype, v.relu, v.arch)]
        for name, key in aot._int_keys(v).items():
            assert key == g[name] or (g[name] == "i32" and key in ("1", "i32:D")), (v.label(), name, key)
    for dtype in ("float16", "bfloat16"):
        served = {n for v in aligned if v.dtype == dtype for n in v.launches}
        assert {f"{m}/{b}/N256/b1" for m in ("paper", "torchvision") for b in GOOGLENET_BLOCKS} <= served
        assert not any("/N1/" in n for n in served)


def test_launched_aligned_variants_narrow_the_aligned_generic():
    """Every launch GoogLeNet makes with aligned tiles is the aligned generic variant of its arch or
    narrower, and at batch 256 every channels_last bf16 3 x 3 branch of the default takes them."""
    generic = {(v.config_name, v.dtype, v.ksize, v.relu, v.arch): aot._int_keys(v)
               for v in aot.launch_variants(["reduce_conv"]) if v.aligned}
    launched = aot.googlenet_launch_variants(["reduce_conv"], batches=[1, 256], gpus=[None])
    aligned = [v for v in launched if v.aligned]
    assert {v.arch for v in aligned} == set(aot.RECORD_ARCHS)
    for v in aligned:
        g = generic[(v.config_name, v.dtype, v.ksize, v.relu, v.arch)]
        for name, key in aot._int_keys(v).items():
            assert key == g[name] or (g[name] == "i32" and key in ("1", "i32:D")), (v.label(), name, key)
    for arch in aot.RECORD_ARCHS:
        served = {n for v in aligned if v.arch == arch and v.dtype == "bfloat16" for n in v.launches}
        assert {f"{m}/{b}/N256/b3" for m in ("paper", "torchvision") for b in GOOGLENET_BLOCKS} <= served


def test_loop_instructions_counts_the_largest_loop_body():
    sass = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   IADD3 R2, R1, 0x1, RZ ;
        /*0020*/                   LDS R3, [R2] ;
        /*0030*/               @P0 BRA 0x10 ;
        /*0040*/                   FADD R4, R3, R3 ;
        /*0050*/               @P1 BRA 0x40 ;
        /*0060*/                   BRA 0x90 ;
        /*0070*/                   EXIT ;
    """
    assert compiling.loop_instructions(sass) == 3  # 0x10-0x30; 0x40-0x50 is 2; 0x60 jumps forward
    assert compiling.loop_instructions("") == 0


def _default_launches(names: dict[str, int], arch: int | None = None) -> dict[int, aot.LaunchVariant]:
    """The default config's bf16 channels_last batch-256 specializations serving these launches,
    by the number given with each name: with its own tiles (``arch`` None), or the aligned tiles
    of ``arch``."""
    picked = {}
    for v in aot.googlenet_launch_variants(["pointwise_pool"], batches=[256]):
        if (v.dtype, v.layout, v.config_name, v.arch) == ("bfloat16", "nhwc", "default", arch):
            picked.update({names[n]: v for n in v.launches if n in names})
    assert sorted(picked) == sorted(names.values())
    return picked


def _figures(row: dict) -> tuple[int, int, int]:
    return row["registers"], row["shared"] + row["static_shared"], row["loop_instructions"]


@pytest.mark.skipif(triton.__version__ != COMPILED_WITH, reason=f"the figures were read with triton {COMPILED_WITH}")
def test_plan_compiled_figures_are_what_compile_check_reports():
    """The latency model's registers, shared memory and loop instructions of the pointwise kernel
    (plan/schedules.py) are compile-check's for the launches they name: the default config's
    (COMPILED_POINTWISE) for 3b's branch 1 (its own tiles and its sm_90 aligned ones) and pool and
    4e's wide pool; the measured code's
    (COMPILED_POINTWISE_AC3B22C, and COMPILED_POINTWISE's np64) for 3b's two launches with each
    config the H200's tuner timed, taps masked."""
    picked = _default_launches({"torchvision/3b/N256/b1": 0, "torchvision/3b/N256/pool": 64,
                                "torchvision/4e/N256/pool": 128})
    variants = [picked[w] for w in (0, 64, 128)]
    keys = [("default", 2, w) for w in (0, 64, 128)]
    variants.append(_default_launches({"torchvision/3b/N256/b1": 0}, arch=90)[0])
    keys.append(("default aligned", 2, 0))
    for key in COMPILED_POINTWISE_AC3B22C:
        name, _, width = key
        cfg = POINTWISE_CONFIGS[name]
        tiles = -(-64 // width) if width else -(-128 // cfg.BLOCK_N)  # 3b: pool_proj 64, ch1x1 128
        v = picked[64 if width else 0]
        ints = tuple((n, aot.jit_int_key(tiles) if n == "n_col_tiles" else k) for n, k in v.ints)
        variants.append(dataclasses.replace(v, config_name=name, config=cfg, clamped=False, wide_pool=False, ints=ints))
        keys.append(key)
    for key, row in zip(keys, compiling.check([90], variants)):
        table = COMPILED_POINTWISE if key[0].startswith("default") else COMPILED_POINTWISE_AC3B22C
        assert _figures(row) == table[key], key
    assert all(COMPILED_POINTWISE[k] == COMPILED_POINTWISE_AC3B22C[k] for k in COMPILED_POINTWISE if k[0] == "np64")


def test_launched_clamped_variants_narrow_the_clamped_generic():
    """Every clamped pool launch GoogLeNet makes is the clamped generic variant or narrower: each
    int the generic leaves free may be anything, each other int is the same (1, or divisible by
    16)."""
    generic = {(v.config_name, v.dtype, v.input_precision, v.relu, v.wide_pool): aot._int_keys(v)
               for v in aot.launch_variants(["pointwise_pool"]) if v.clamped}
    launched = [v for v in aot.googlenet_launch_variants(["pointwise_pool"], batches=[1, 256]) if v.clamped]
    assert launched and any(v.wide_pool for v in launched)
    for v in launched:
        g = generic[(v.config_name, v.dtype, v.input_precision, v.relu, v.wide_pool)]
        for name, key in aot._int_keys(v).items():
            assert key == g[name] or (g[name] == "i32" and key in ("1", "i32:D")), (v.label(), name, key)


def test_aligned_pool_variants_only_channels_last_pool_launches():
    variants = aot.launch_variants()
    clamped = [v for v in variants if v.clamped]
    assert clamped and all(v.pool and v.layout == "nhwc" and v.config.clamp_taps for v in clamped)
    assert all(v.clamped and v.config.BLOCK_NP_WIDE for v in variants if v.wide_pool)
    # every pointwise config that clamps its taps has its aligned pool variant for each dtype and
    # precision it launches, and a wide one where it has wide tiles
    launched = {(k, d, p, cfg) for k, d, p, cfg in launchable_configs() if k == "pointwise_pool" and cfg.clamp_taps}
    assert not POINTWISE_CONFIGS["np64"].clamp_taps
    assert {("pointwise_pool", v.dtype, v.input_precision, v.config) for v in clamped if v.relu} == launched
    assert {("pointwise_pool", v.dtype, v.input_precision, v.config) for v in clamped if v.relu and v.wide_pool} == {
        row for row in launched if row[3].BLOCK_NP_WIDE}


def test_launch_variants_cover_every_launchable_config():
    variants = aot.launch_variants()
    assert len(set(variants)) == len(variants)
    assert {(v.kernel, v.config_name) for v in variants} == SHIPPED
    for kernel, dtype_name, precision, cfg in launchable_configs():
        mine = [v for v in variants
                if (v.kernel, v.dtype, v.input_precision, v.config) == (kernel, dtype_name, precision, cfg)]
        assert mine, (kernel, dtype_name, precision, cfg)
        assert {v.layout for v in mine if v.relu} == set(aot.LAYOUTS)
        if kernel == "reduce_conv":
            assert {v.ksize for v in mine} == {3, 5}
    for kernel, name in SHIPPED:
        mine = [v for v in variants if (v.kernel, v.config_name) == (kernel, name)]
        assert any(not v.relu for v in mine)
    # fp32 IEEE dots are FMAs; everything else must reach the tensor cores
    assert all(v.expects_mma == (v.dtype != "float32" or v.input_precision == "tf32") for v in variants)


class _Recorder:
    """Stands in for a @triton.jit kernel: records what the launcher passes."""

    def __init__(self):
        self.calls = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs))


def _launch_args(kernel: str, v: aot.LaunchVariant, monkeypatch) -> tuple[tuple, dict]:
    # sizes chosen so that no int argument but the unit strides is 1 (tile counts >= 2)
    dt = getattr(torch, v.dtype)
    mf = torch.channels_last if v.layout == "nhwc" else torch.contiguous_format
    x = torch.randn(2, 24, 20, 18).to(dtype=dt, memory_format=mf)
    rec = _Recorder()
    if kernel == "pointwise_pool" and v.clamped:
        # an aligned channels_last launch: 80 pool columns (one wide tile, or 2 column tiles of a
        # config without wide ones), or 144 (3 narrow tiles, too wide for one wide tile)
        cp = 80 if v.wide_pool or not v.config.BLOCK_NP_WIDE else 144
        x = torch.randn(2, 32, 20, 18).to(dtype=dt, memory_format=mf)
        out = torch.empty(2, 112 + cp + 16, 20, 18, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(pointwise_mod, "_pointwise_pool_kernel", rec)
        pointwise_mod.launch_pointwise_pool(
            x, torch.randn(32, 80 + cp, dtype=dt), torch.randn(80 + cp), 80, out, 16, 112, v.relu,
            v.input_precision, v.config)
        rec.calls = [c for c in rec.calls if c[1]["IS_POOL"]]
    elif kernel == "pointwise_pool" and v.aligned:
        # an aligned channels_last branch-1 launch on the interpreter's INTERPRETER_SMS SMs,
        # pretending to be the tiles' arch: 720 pixels and 160 branch-1 columns (6 x 2 tiles of
        # 128, enough to fill the SMs)
        x = torch.randn(2, 32, 20, 18).to(dtype=dt, memory_format=mf)
        out = torch.empty(2, 160 + 48 + 16, 20, 18, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(pointwise_mod, "_pointwise_pool_kernel", rec)
        monkeypatch.setattr(kernel_gpu, "sm_arch", lambda device: v.arch)
        monkeypatch.setattr(kernel_gpu, "sm_count", lambda device: None)
        pointwise_mod.launch_pointwise_pool(
            x, torch.randn(32, 160 + 48, dtype=dt), torch.randn(160 + 48), 160, out, 16, 176, v.relu,
            v.input_precision, POINTWISE_CONFIGS[v.config_name])
        rec.calls = [c for c in rec.calls if not c[1]["IS_POOL"]]
    elif kernel == "pointwise_pool":
        # 80 + 80 columns: at least 2 column tiles of either kind in every config (24 input
        # channels: never the aligned specialization)
        out = torch.empty(2, 170, 20, 18, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(pointwise_mod, "_pointwise_pool_kernel", rec)
        pointwise_mod.launch_pointwise_pool(
            x, torch.randn(24, 160, dtype=dt), torch.randn(160), 80, out, 2, 82, v.relu,
            v.input_precision, v.config)
        # two launches per block (branch 1, then the pool projection): the variant's one
        rec.calls = [c for c in rec.calls if c[1]["IS_POOL"] == v.pool]
    elif v.aligned:
        # an aligned channels_last launch on the interpreter's INTERPRETER_SMS SMs, pretending to be
        # the tiles' arch: 256 pixels (2 tiles of 128) and 256 output channels (2 or 4 column
        # blocks), so the tiles still fill the SMs and split columns (n_split 2)
        k = v.ksize
        x = torch.randn(1, 32, 16, 16).to(dtype=dt, memory_format=mf)
        out = torch.empty(1, 288, 16, 16, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(reduce_conv_mod, "_reduce_conv_kernel", rec)
        monkeypatch.setattr(kernel_gpu, "sm_arch", lambda device: v.arch)
        monkeypatch.setattr(kernel_gpu, "sm_count", lambda device: None)
        reduce_conv_mod.launch_reduce_conv(
            x, torch.randn(32, 16, dtype=dt), torch.randn(16), torch.randn(k * k, 16, 256, dtype=dt),
            torch.randn(256), k, out, 16, v.relu, v.input_precision, REDUCE_CONV_CONFIGS[v.config_name])
    else:
        # 100 pixels (2 tiles of 64, 4 of 32) and 200 output channels: split_columns configs split
        k = v.ksize
        x = torch.randn(1, 24, 10, 10).to(dtype=dt, memory_format=mf)
        out = torch.empty(1, 210, 10, 10, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(reduce_conv_mod, "_reduce_conv_kernel", rec)
        reduce_conv_mod.launch_reduce_conv(
            x, torch.randn(24, 16, dtype=dt), torch.randn(16), torch.randn(k * k, 16, 200, dtype=dt),
            torch.randn(200), k, out, 8, v.relu, v.input_precision, v.config)
    assert len(rec.calls) == 1
    return rec.calls[0]


@pytest.mark.parametrize("kernel", ["pointwise_pool", "reduce_conv"])
def test_aot_specialization_matches_the_launcher(kernel, monkeypatch):
    """Signature, constexprs and options are what launch_* really passes, for every variant."""
    for v in [v for v in aot.launch_variants() if v.kernel == kernel]:
        sig = aot.signature(v)
        constexprs = aot.constexpr_values(v)
        options = aot.compile_options(v)
        args, kwargs = _launch_args(kernel, v, monkeypatch)
        monkeypatch.undo()
        assert {k: kwargs.pop(k) for k in ("num_warps", "num_stages")} == options
        runtime = [n for n, t in sig.items() if n not in kwargs]  # positional, in order
        assert len(args) == len(runtime), v.label()
        for name, value in kwargs.items():
            assert sig[name] == "constexpr" and constexprs[name] == value, (v.label(), name)
        for name, value in zip(runtime, args):
            if isinstance(value, torch.Tensor):
                want = "*fp32" if value.dtype == torch.float32 else aot.ptr_type(v.dtype)
                assert sig[name] == want, (v.label(), name)
            elif value == 1 and name == "n_split" and not v.config.split_columns:
                # a config that never splits always passes 1, which the JIT makes a constexpr; the
                # generic variant keeps it a runtime int (any launch specializes at least as much)
                assert sig[name] == "i32", (v.label(), name)
            elif value == 1:  # the JIT turns an int 1 into a constexpr
                assert sig[name] == "constexpr" and constexprs[name] == 1, (v.label(), name)
            else:
                assert sig[name] == "i32", (v.label(), name)
            if isinstance(value, int) and (v.aligned or v.clamped) and aot._int_keys(v)[name] == "i32:D":
                # the aligned specialization's divisibility hints hold for what the launcher passes
                assert aot.jit_int_key(value) == "i32:D", (v.label(), name, value)
        assert set(constexprs) == {n for n, t in sig.items() if t == "constexpr"}


def _broken_variants(tmp_path):
    """K step 8 is below tl.dot's minimum of 16: the compile must fail."""
    broken = aot.LaunchVariant("pointwise_pool", "broken_k8", PointwiseConfig(64, 64, 8), "float16",
                               "ieee", None)
    path = tmp_path / "variants.json"
    path.write_text(json.dumps([broken.to_dict()]))
    return path


def test_broken_variant_fails_the_cli(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "fused_inception", "compile-check", "--arch", "80",
         "--variants", str(_broken_variants(tmp_path)), "--jobs", "1"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL pointwise_pool/broken_k8 float16 ieee relu=1 nhwc sm_80: compile failed" in res.stdout
    assert "K >= 16" in res.stdout


def test_broken_variant_fails_run_and_writes_json(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cc.add_arguments(parser)
    out = tmp_path / "rows.json"
    args = parser.parse_args(["--arch", "sm_90", "--variants", str(_broken_variants(tmp_path)),
                              "--json", str(out)])
    assert cc.run(args) == 1
    printed = capsys.readouterr().out
    assert "broken_k8" in printed and "FAIL compile" in printed
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and rows[0]["arch"] == 90 and "K >= 16" in rows[0]["error"]
    assert len(report.failures(rows)) == 1


def _good_row(arch=90) -> dict:
    row = compiling._empty_row(_variant("reduce_conv", "mma", "float16", "ieee", 3, True, "nhwc"), arch)
    row.update(registers=200, stack=0, local=0, spill_stores=0, spill_loads=0, shared=16384,
               static_shared=0, hmma=8 if arch < 90 else 0, hgmma=0 if arch < 90 else 4, ldgsts=6,
               utmaldg=0, barriers=10)
    assert report.row_failures(row) == []
    return row


@pytest.mark.parametrize("arch", [80, 90])
def test_verdicts(arch):
    limit = compiling.SMEM_LIMIT[arch]
    assert limit == {80: 166912, 90: 232448}[arch]
    cases = {
        "smem": dict(shared=limit - 1024 + 1, static_shared=1024),
        "spills": dict(spill_stores=4, spill_loads=4, stack=8),
        "no-MMA": dict(hmma=0, hgmma=0, ldgsts=0),
        "compile": dict(error="CompilationError: at 1:2:\n  x\nValueError('bad')"),
        "registers": dict(registers=256),
    }
    for word, change in cases.items():
        row = {**_good_row(arch), **change}
        why = report.row_failures(row)
        assert len(why) == 1 and why[0].startswith(word), (word, why)
        assert len(report.failures([row, _good_row(arch)])) == 1
    at_limit = {**_good_row(arch), "shared": limit, "static_shared": 0}
    assert report.row_failures(at_limit) == []
    fp32_ieee = {**_good_row(arch), "expects_mma": False, "hmma": 0, "hgmma": 0, "ldgsts": 0}
    assert report.row_failures(fp32_ieee) == []
    # the async-copy rule is for launched specializations (generic ones lack alignment hints)
    launched = {**_good_row(arch), "set": "launched", "launches": ["paper/3a/N256/b3"]}
    assert report.row_failures(launched) == []
    no_async = report.row_failures({**launched, "ldgsts": 0})
    assert len(no_async) == 1 and no_async[0].startswith("no-async-copy"), no_async
    assert report.row_failures({**launched, "ldgsts": 0, "utmaldg": 2}) == []  # TMA counts too
    assert report.row_failures({**launched, "ldgsts": 0, "expects_mma": False, "hmma": 0, "hgmma": 0}) == []
    mma_sync = report.row_failures({**_good_row(arch), "hmma": 4, "hgmma": 0})
    if arch >= 90:
        assert len(mma_sync) == 1 and mma_sync[0].startswith("mma.sync"), mma_sync
    else:
        assert mma_sync == []
    table = report.format_table([_good_row(arch), {**_good_row(arch), "stack": 8}])
    assert "regs" in table and "FAIL spills" in table and table.count("\n") == 3
    for column in ("LDGSTS", "UTMALDG", "bar", "warps/SM"):
        assert column in table


def test_allow_spills_reports_spills_and_fails_everything_else():
    """--allow-spills (CI's triton lower end) leaves spills out of the failures, lists them, and
    still fails a row that spills and also breaks another rule."""
    spilled = {**_good_row(90), "spill_stores": 8, "spill_loads": 8, "stack": 8}
    no_mma_too = {**spilled, "hmma": 0, "hgmma": 0}
    assert len(report.failures([spilled])) == 1 and report.failures([spilled], allow_spills=True) == []
    (line,) = report.failures([no_mma_too], allow_spills=True)
    assert "no-MMA" in line and "spills" not in line
    assert len(report.spilling([spilled, no_mma_too, _good_row(90)])) == 2


def test_resident_warps():
    """Programs per SM from registers (per-warp allocation in units of 256) and shared memory
    (plus 1 KiB reserved per CTA), capped at 64 warps and 32 CTAs; the figures of sm_80/sm_90."""
    assert compiling.SM_LIMITS[80].shared == 164 * 1024 and compiling.SM_LIMITS[90].shared == 228 * 1024
    # 128 registers x 32 lanes = 4096 per warp: 16 warps; 4-warp CTAs -> 4 CTAs
    assert compiling.resident_warps(90, 128, 0, 4) == 16
    # 129 registers round up to 130 x 32 = 4160 -> 4352 (17 x 256) per warp: 15 warps -> 3 CTAs
    assert compiling.resident_warps(90, 129, 0, 4) == 12
    # 32 registers: the 64-warp limit binds
    assert compiling.resident_warps(80, 32, 0, 4) == 64
    # shared memory binds: (40 KiB + 1 KiB) per CTA -> 4 on sm_80 (164 KiB), 5 on sm_90 (228 KiB)
    assert compiling.resident_warps(80, 64, 40 * 1024, 4) == 16
    assert compiling.resident_warps(90, 64, 40 * 1024, 4) == 20
    assert compiling.resident_warps(75, 64, 0, 4) is None


# ---------------------------------------------------------------- launched specializations

@pytest.fixture(scope="module")
def recorded():
    return aot.record_googlenet_launches()


@pytest.fixture(scope="module")
def launched():
    """The default configs' launches (tuned files are covered in tests/tools/test_tuning.py)."""
    return aot.googlenet_launch_variants(gpus=[None])


def test_jit_int_key_matches_triton():
    """aot.jit_int_key against triton's native specialization function (as the JIT binder calls
    it for our kernels: not const, specialize and align on), on edge values."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.nvidia.compiler import CUDABackend

    values = [0, 1, 2, 15, 16, 17, 32, 48, 49, 784, -1, -16, -17, 2**31 - 16, 2**31 - 1, -2**31,
              -2**31 - 1, -2**31 - 16, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 16, -2**63]
    for value in values:
        ty, key = native_specialize_impl(CUDABackend, value, False, True, True)
        want = "1" if ty == "constexpr" else ty + (":D" if key == "D" else "")
        assert aot.jit_int_key(value) == want, value
    with pytest.raises(TypeError):
        aot.jit_int_key(True)  # bools are u1, never specialized: the kernels take none
    with pytest.raises(OverflowError):
        aot.jit_int_key(2**64)


def _jit_specialization(kernel: str, args: tuple, kwargs: dict, arch: int = 80):
    """What triton's JIT computes for one launch on a CUDA device of ``arch``: the binder
    JITFunction.run uses (create_function_from_signature) and its _pack_args. No GPU needed."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    fn = JITFunction(aot.KERNELS[kernel].python_fn())  # the suite's kernels are interpreted
    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, dict(kwargs), bound, specialization, options)
    return signature, constexprs, {k: v for k, v in attrs.items() if v}, options


def test_launched_specialization_matches_the_jit(recorded):
    """For every launch GoogLeNet makes (recorded from the library's forward), the ASTSource
    signature, constexprs and attributes compile-check uses are what triton's JIT derives from the
    same arguments. Pointers: meta tensors have data_ptr 0, i.e. the aligned case compile-check
    assumes for fresh allocations."""
    assert len(recorded) == 2 * 9 * 2 * len(aot.GOOGLENET_BATCHES) * len(
        [p for d in DTYPES for p in INPUT_PRECISIONS[d]]) * 4
    for rec in recorded:
        v = aot.launched_variant(rec)
        sig, constexprs, attrs, options = _jit_specialization(rec.kernel, rec.args, rec.kwargs)
        names = list(sig)
        assert aot.signature(v) == sig, rec.name()
        assert {(names.index(n),): val for n, val in aot.constexpr_values(v).items()} == constexprs, rec.name()
        assert aot.attributes(v) == attrs, rec.name()
        assert (options.num_warps, options.num_stages) == (v.config.num_warps, v.config.num_stages)


def test_reviewed_launch_specializes_as_expected(recorded):
    """Block 3a (paper), batch 256, channels_last, bf16: branch 1's n_col_tiles = 64/64 = 1 and reduce_conv's
    n_split = 1 are constexprs, every int but H = W = 28 is divisible by 16; the generic variant
    has no hint at all."""
    recs = {r.kernel + r.branch: r for r in recorded
            if (r.model, r.block, r.batch, r.layout, r.dtype) == ("paper", "3a", 256, "nhwc", "bfloat16")}
    pw = aot.launched_variant(recs["pointwise_poolb1"])
    assert pw.ints_label() == "1:sx_c,so_c,n_col_tiles nd:H,W"
    rc = aot.launched_variant(recs["reduce_convb3"])
    assert rc.ints_label() == "1:sx_c,so_c,n_split nd:H,W"  # 3136 tiles: no column split
    generic = _variant("reduce_conv", "mma", "bfloat16", "ieee", 3, True, "nhwc")
    assert len(aot.attributes(rc)) > len(aot.attributes(generic)) == 7  # generic: the 7 pointers only
    assert rc.spec is generic.spec and rc != generic


def test_launched_variants_cover_all_blocks(recorded, launched):
    """On each recorded arch, every launch is served by a launched specialization that arch runs and
    that lists it, and for every kernel, dtype/precision, memory format and batch, the 9 blocks x 2
    variants are all there (reduce_conv: both branches, k = 3 and, for the paper, 5). One launch
    may be served by different specializations on different archs (aligned tiles on one, the
    config's own on the other)."""
    from fused_inception.spec import GOOGLENET_BLOCKS, VARIANTS

    assert len(set(launched)) == len(launched)
    assert all(v.launched and v.relu for v in launched)
    index = {v: v for v in launched}  # a variant's identity leaves out its launches
    blocks = {(m, b) for m in VARIANTS for b in GOOGLENET_BLOCKS}
    assert len(blocks) == 18
    for arch in aot.RECORD_ARCHS:
        recs = recorded if arch == aot.RECORD_ARCHS[-1] else aot.record_googlenet_launches(arch=arch)
        assert len(recs) == len(recorded)
        served = []
        for rec in recs:
            v = index[aot.launched_variant(rec)]
            assert v.compiled_for(arch) and rec.name() in v.launches, (arch, rec.name())
            served.append((rec.name(), v))
        # a launch name says model/block/batch/branch; dtype, precision and layout are the variant's
        names = [(v.dtype, v.input_precision, v.layout, n) for n, v in served]
        assert len(names) == len(set(names)) == len(recorded), arch
        _check_blocks_covered(served, blocks, arch)
    # batch 1 specializes differently from 256 (M and num_tiles), so both are needed
    by_batch = {b: {v for v in launched if any(n.split("/")[2] == f"N{b}" for n in v.launches)}
                for b in aot.GOOGLENET_BATCHES}
    assert by_batch[1] != by_batch[256]
    # a variant round-trips through the workers' JSON, each block kernel's aligned tiles (and a
    # config holding them) included, and the stem's pool window
    some = launched[:5] + [next(v for v in launched if v.aligned and v.kernel == k) for k in BLOCK_KERNELS]
    some += [next(v for v in launched if v.kernel == k and v.config.aligned) for k in BLOCK_KERNELS]
    some += [next(v for v in launched if v.kernel == "bn_relu_pool")]
    assert all(aot.LaunchVariant.from_dict(json.loads(json.dumps(v.to_dict()))) == v for v in some)


def _check_blocks_covered(served, blocks, arch):
    """``served``: (launch name, variant) of every launch recorded for ``arch``."""
    for kernel, dtype_name, precision, cfg in default_configs():
        for layout in aot.LAYOUTS:
            for batch in aot.GOOGLENET_BATCHES:
                mine = [(n.split("/"), v) for n, v in served
                        if (v.kernel, v.dtype, v.input_precision, v.layout) == (kernel, dtype_name, precision, layout)]
                mine = [(parts, v) for parts, v in mine if parts[2] == f"N{batch}"]
                assert {(p[0], p[1]) for p, _ in mine} == blocks, (kernel, dtype_name, precision, layout, batch)
                assert all(v.config == (cfg.aligned_tiles(arch) if v.aligned else cfg) for _, v in mine)
                if kernel == "reduce_conv":
                    assert {(p[0], p[1], p[3]) for p, _ in mine} == {(m, b, br) for m, b in blocks for br in ("b3", "b5")}
                    k5 = {p[0]: v.ksize for p, v in mine if p[3] == "b5"}
                    assert k5 == {"paper": 5, "torchvision": 3}


def _launched_pick(launched, kernel, dtype, launch, layout, arch):
    for v in launched:
        if (v.kernel, v.dtype, v.layout) == (kernel, dtype, layout) and launch in v.launches and v.compiled_for(arch):
            return v
    raise LookupError((kernel, dtype, launch, layout))


@pytest.fixture(scope="module")
def launched_rows(launched):
    """One launched specialization per kernel and arch, compiled."""
    picks = {
        80: [_launched_pick(launched, "pointwise_pool", "float16", "paper/3a/N256/b1", "nhwc", 80),
             _launched_pick(launched, "reduce_conv", "bfloat16", "paper/3a/N256/b3", "nhwc", 80)],
        90: [_launched_pick(launched, "pointwise_pool", "bfloat16", "torchvision/5b/N1/pool", "nchw", 90),
             _launched_pick(launched, "reduce_conv", "float16", "paper/5b/N1/b5", "nhwc", 90)],
    }
    rows = []
    for arch, variants in picks.items():
        rows += compiling.check([arch], variants)
    return rows


def test_launched_subset_compiles_without_spills_on_tensor_cores(launched_rows):
    assert len(launched_rows) == 4
    assert {(r["arch"], r["kernel"]) for r in launched_rows} == {
        (a, k) for a in (80, 90) for k in ("pointwise_pool", "reduce_conv")}
    for row in launched_rows:
        assert row["set"] == "launched" and row["launches"], row
        assert row["error"] is None, row["error"]
        assert 0 < row["registers"] <= 255
        assert not any(row[k] for k in ("stack", "local", "spill_stores", "spill_loads")), row
        assert row["expects_mma"] and row["hmma"] + row["hgmma"] > 0, "no HMMA/HGMMA in the SASS"
        assert row["resident_warps"] >= row["num_warps"] and row["barriers"] > 0
        assert row["ldgsts"] > 0, f"{row['kernel']}'s K loops are not pipelined"
        if row["arch"] >= 90:
            assert row["hgmma"] > 0 and row["hmma"] == 0, f"{row['kernel']} runs mma.sync on sm_90"
        assert report.row_failures(row) == []
    # the 7x7 batch-1 reduce_conv launch has a single tile: its 2 column blocks go to 2 programs
    rc90 = next(r for r in launched_rows if r["arch"] == 90 and r["kernel"] == "reduce_conv")
    assert "n_split" not in rc90["ints"].split(" ")[0] and "num_items" in rc90["ints"]


def test_launches_label():
    launches = ["paper/3a/N256/b3", "paper/3b/N256/b3", "torchvision/3a/N256/b3",
                "torchvision/3b/N256/b3", "paper/4a/N1/b3", "paper/4b/N1/b3", "paper/4c/N1/b3",
                "torchvision/4a/N1/b3", "torchvision/4a/N1/b5"]
    assert report.launches_label(launches) == "N256 3a,3b[3]; N1 p:4a-4c[3] tv:4a[3,5]"
    assert report.launches_label(["paper/3a/N1/b1p", "torchvision/3a/N1/b1p"]) == "N1 3a"
    assert report.launches_label([]) == "generic"


def test_cli_selects_generic_and_launched_sets(monkeypatch, capsys):
    """--generic-only / --launched-only / default (both) pick the variant sets; the summary has a
    line per arch and set; a failure in either set fails the command. (Compiles are faked.)"""
    seen = {}

    def fake_check(archs, variants, jobs=None):
        seen["variants"] = list(variants)
        rows = []
        for a in archs:
            for v in variants:
                row = compiling._empty_row(v, a)
                row.update(registers=100, stack=0, local=0, spill_stores=0, spill_loads=0, shared=0,
                           static_shared=0, hmma=4 if a < 90 else 0, hgmma=0 if a < 90 else 4, ldgsts=4)
                rows.append(row)
        if seen.get("spill_launched"):
            next(r for r in rows if r["set"] == "launched").update(spill_stores=8)
        return rows

    monkeypatch.setattr(cc, "check", fake_check)
    parser = argparse.ArgumentParser()
    cc.add_arguments(parser)
    generic = aot.launch_variants(["pointwise_pool"])
    assert cc.run(parser.parse_args(["--arch", "80", "--kernel", "pointwise_pool", "--generic-only"])) == 0
    assert seen["variants"] == generic
    assert cc.run(parser.parse_args(["--arch", "80", "--kernel", "pointwise_pool", "--launched-only",
                                     "--batch", "1"])) == 0
    assert seen["variants"] and all(v.launched and v.kernel == "pointwise_pool" for v in seen["variants"])
    assert all(n.split("/")[2] == "N1" for v in seen["variants"] for n in v.launches)
    capsys.readouterr()
    assert cc.run(parser.parse_args(["--arch", "80,90", "--kernel", "pointwise_pool"])) == 0
    out = capsys.readouterr().out
    assert seen["variants"][:len(generic)] == generic and all(v.launched for v in seen["variants"][len(generic):])
    for line in ("sm_80 generic:", "sm_80 launched:", "sm_90 generic:", "sm_90 launched:",
                 "Generic variants", "Launched specializations", "launched by"):
        assert line in out, line
    seen["spill_launched"] = True
    assert cc.run(parser.parse_args(["--arch", "80", "--kernel", "pointwise_pool"])) == 1
    out = capsys.readouterr().out
    assert "FAIL pointwise_pool/" in out and "launched[" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["--generic-only", "--launched-only"])


# ---------------------------------------------------------------- the stem's epilogue (bn_relu_pool)

# GoogLeNet's benchmark batches; the stem's specializations do not depend on the batch
STEM_BATCHES = (1, 32, 256)
# unit -> (x [C, H, W], out [C, HO, WO], (KERNEL, STRIDE, PAD)): the torchvision stem at 224 x 224
STEM_SHAPES = {
    "conv1": ((64, 112, 112), (64, 56, 56), (3, 2, 0)),  # ceil_mode: 112 -> 56, not 55
    "conv2": ((64, 56, 56), (64, 56, 56), (1, 1, 0)),
    "conv3": ((192, 56, 56), (192, 28, 28), (3, 2, 0)),
}


@pytest.fixture(scope="module")
def stem_recorded():
    return aot.record_stem_launches(STEM_BATCHES)


@pytest.fixture(scope="module")
def stem_launched():
    return aot.stem_launch_variants(batches=STEM_BATCHES)


def _stem_pick(variants, dtype: str, layout: str, unit: str) -> aot.LaunchVariant:
    """The one stem specialization of ``unit``'s epilogue ("conv1") in this dtype and layout."""
    (v,) = [v for v in variants
            if (v.dtype, v.layout) == (dtype, layout) and f"torchvision/{unit}/N1/stem" in v.launches]
    return v


def test_stem_launches_are_the_torchvision_stem_epilogues(stem_recorded):
    """Each dtype, memory format and batch launches the three units' epilogues with the stem's
    shapes and pool windows; x, out and the BN's parameters and buffers in the model's dtype, x
    and out in the memory format, the BN's eps."""
    assert len(stem_recorded) == len(DTYPES) * len(aot.LAYOUTS) * len(STEM_BATCHES) * len(STEM_SHAPES)
    for rec in stem_recorded:
        x, gamma, beta, mean, var, out, eps = rec.args[:7]
        x_shape, out_shape, window = STEM_SHAPES[rec.block]
        assert (rec.model, rec.branch, rec.input_precision, rec.arch) == ("torchvision", "stem", None, None)
        assert (tuple(x.shape), tuple(out.shape)) == ((rec.batch, *x_shape), (rec.batch, *out_shape)), rec.name()
        assert (rec.kwargs["KERNEL"], rec.kwargs["STRIDE"], rec.kwargs["PAD"]) == window
        assert {t.dtype for t in (x, gamma, beta, mean, var, out)} == {getattr(torch, rec.dtype)}, rec.name()
        fmt = torch.channels_last if rec.layout == "nhwc" else torch.contiguous_format
        assert x.is_contiguous(memory_format=fmt) and out.is_contiguous(memory_format=fmt), rec.name()
        assert eps == 1e-3


def test_stem_specialization_matches_the_jit(stem_recorded):
    """As for the blocks' launches: signature (eps a float: fp32), constexprs, attributes and
    num_warps are what triton's JIT derives from the recorded arguments; num_stages is left to
    triton's default, as the launcher leaves it."""
    for rec in stem_recorded:
        v = aot.launched_variant(rec)
        sig, constexprs, attrs, options = _jit_specialization(rec.kernel, rec.args, rec.kwargs)
        names = list(sig)
        assert aot.signature(v) == sig and sig["eps"] == "fp32", rec.name()
        assert {(names.index(n),): val for n, val in aot.constexpr_values(v).items()} == constexprs, rec.name()
        assert aot.attributes(v) == attrs, rec.name()
        assert aot.compile_options(v) == {"num_warps": options.num_warps}


def test_stem_variants_one_per_dtype_layout_and_unit(stem_launched):
    """18 specializations: dtype x memory format x unit (conv1's and conv3's windows are the same,
    their channel counts and sizes are not), each serving its unit at every batch: the batch only
    changes P = N * HO * WO, a multiple of 16 at any N. None is a tensor-core variant, none is
    generic."""
    assert len(stem_launched) == len(set(stem_launched)) == len(DTYPES) * len(aot.LAYOUTS) * len(STEM_SHAPES)
    for v in stem_launched:
        (unit,) = {n.split("/")[1] for n in v.launches}
        assert sorted(v.launches) == sorted(f"torchvision/{unit}/N{b}/stem" for b in STEM_BATCHES)
        assert v.config == aot.PoolWindow(*STEM_SHAPES[unit][2]) and v.launched and not v.expects_mma
        assert v.input_precision is None and v.compiled_for(80) and v.compiled_for(90)
    for batch in STEM_BATCHES:
        assert set(aot.stem_launch_variants(batches=[batch])) == set(stem_launched)
    # 32-channel tiles: 2 of conv1's 64, 6 of conv3's 192 (neither 1 nor a multiple of 16); 56 x 56
    # and 28 x 28 maps: no hint
    assert _stem_pick(stem_launched, "bfloat16", "nhwc", "conv1").ints_label() == "1:sx_c,so_c nd:HO,WO,n_c_tiles"
    assert (_stem_pick(stem_launched, "float16", "nchw", "conv3").ints_label()
            == "1:sx_w,so_w nd:H,W,HO,WO,sx_h,so_h,n_c_tiles")
    # what the CLI's launched set holds for the kernel; its generic set has nothing
    assert aot.googlenet_launch_variants(["bn_relu_pool"], batches=STEM_BATCHES) == stem_launched
    assert aot.launch_variants(["bn_relu_pool"]) == []


def test_stem_rows_are_not_held_to_the_tensor_core_rules(stem_launched):
    """A bn_relu_pool row without MMA or async copies passes on sm_80 and sm_90 (it has no dot:
    the no-MMA, mma.sync and no-async-copy rules do not apply); a spill still fails it. Its row
    takes num_warps from the launch and leaves num_stages to triton."""
    v = _stem_pick(stem_launched, "bfloat16", "nchw", "conv1")
    for arch in (80, 90):
        row = compiling._empty_row(v, arch)
        row.update(registers=128, stack=0, local=0, spill_stores=0, spill_loads=0, shared=0, static_shared=0,
                   hmma=0, hgmma=0, ldgsts=0, utmaldg=0, barriers=0)
        assert not row["expects_mma"] and (row["num_warps"], row["num_stages"]) == (4, None)
        assert report.row_failures(row) == []
        (line,) = report.failures([{**row, "spill_stores": 8, "spill_loads": 8, "stack": 8}])
        assert line.startswith(f"bn_relu_pool/pool3s2p0 bfloat16 relu=1 nchw sm_{arch} launched[")
        assert line.endswith("(N256 tv:conv1; N32 tv:conv1; N1 tv:conv1): spills (stack 8 B, spill_stores 8 B, "
                             "spill_loads 8 B)")


# one real compile per arch: the channels_last bf16 fast path on sm_90, and an NCHW pool, the
# heaviest variant (with 64 x 64 tiles and 64-bit offsets it spilled 480-1096 B in every dtype on
# both archs; 64 x 32 tiles and 32-bit offsets: 165 registers on sm_80, 0 spills, triton 3.8)
STEM_FAST = (90, "bfloat16", "nhwc", "conv1")
STEM_NCHW_POOL = (80, "float16", "nchw", "conv3")


@pytest.fixture(scope="module")
def stem_rows(stem_launched) -> dict[tuple, dict]:
    rows = {}
    for arch, dtype, layout, unit in (STEM_FAST, STEM_NCHW_POOL):
        (rows[(arch, dtype, layout, unit)],) = compiling.check([arch], [_stem_pick(stem_launched, dtype, layout, unit)])
    return rows


def test_stem_variants_compile_without_tensor_core_instructions(stem_rows):
    """Both compile without spills, with no MMA and no async copy (no dot, nothing to pipeline),
    and no rule fails them (the tensor-core rules do not apply to them)."""
    for row in stem_rows.values():
        assert row["error"] is None, row["error"]
        assert row["set"] == "launched" and not row["expects_mma"]
        assert row["hmma"] == row["hgmma"] == row["ldgsts"] == row["utmaldg"] == 0
        assert 0 < row["registers"] <= 255 and row["resident_warps"] >= row["num_warps"] == 4
        assert report.row_failures(row) == []


def test_cli_kernel_bn_relu_pool_checks_the_stem_alone(monkeypatch, capsys):
    """--kernel bn_relu_pool: the stem's 18 launched specializations per arch, no generic variant,
    in the launched table with the units that launch them. (Compiles are faked.)"""
    seen = {}

    def fake_check(archs, variants, jobs=None):
        seen["variants"] = list(variants)
        return [{**compiling._empty_row(v, a), "registers": 100, "stack": 0, "local": 0, "spill_stores": 0,
                 "spill_loads": 0, "shared": 0, "static_shared": 0, "hmma": 0, "hgmma": 0, "ldgsts": 0}
                for a in archs for v in variants]

    monkeypatch.setattr(cc, "check", fake_check)
    parser = argparse.ArgumentParser()
    cc.add_arguments(parser)
    assert cc.run(parser.parse_args(["--arch", "80,90", "--kernel", "bn_relu_pool"])) == 0
    assert seen["variants"] == aot.stem_launch_variants()
    out = capsys.readouterr().out
    assert "Generic variants" not in out and "Launched specializations" in out
    assert "sm_90 launched: 18 specializations" in out and "tv:conv3" in out and "36 compiles" in out
