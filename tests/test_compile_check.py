"""Ahead-of-time compile check (no GPU): shipped kernel variants compile for sm_80 and sm_90
without spills, within shared memory, on tensor cores; broken variants are reported.

The suite runs with TRITON_INTERPRET=1 (tests/conftest.py), so the kernels in this process are
interpreted; compile_check compiles in subprocesses with the interpreter off. The full list is
``python -m fused_inception compile-check --arch 80,90``; here a subset that still covers both
kernels, every shipped config, every dtype (bf16 too), k = 3 and 5, both memory formats, ReLU
off, and both archs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import torch

from fused_inception import compile_check as cc
from fused_inception.kernels import aot
from fused_inception.kernels import pointwise_pool as pointwise_mod
from fused_inception.kernels import reduce_conv as reduce_conv_mod
from fused_inception.kernels.configs import (
    DTYPES,
    POINTWISE_CONFIGS,
    REDUCE_CONV_CONFIGS,
    PointwiseConfig,
    launchable_configs,
)

# (arch, kernel, config, dtype, precision, ksize, relu, layout)
SUBSET = [
    (80, "pointwise_pool", "default", "float32", "tf32", None, True, "nhwc"),
    (90, "pointwise_pool", "default", "float32", "ieee", None, False, "nhwc"),
    (80, "pointwise_pool", "default", "float16", "ieee", None, True, "nchw"),
    (90, "pointwise_pool", "default", "bfloat16", "ieee", None, True, "nhwc"),
    (90, "reduce_conv", "mma", "float32", "tf32", 3, True, "nhwc"),
    (80, "reduce_conv", "fma", "float32", "ieee", 5, True, "nchw"),
    (90, "reduce_conv", "fma", "float32", "ieee", 3, True, "nhwc"),
    (80, "reduce_conv", "mma", "bfloat16", "ieee", 5, True, "nhwc"),
    (90, "reduce_conv", "mma", "float32", "tf32", 3, False, "nhwc"),
    (80, "reduce_conv", "mma", "float16", "ieee", 3, True, "nhwc"),
]

SHIPPED = {("pointwise_pool", n) for n in POINTWISE_CONFIGS} | {("reduce_conv", n) for n in REDUCE_CONV_CONFIGS}


def _variant(kernel, config, dtype, precision, ksize, relu, layout) -> aot.LaunchVariant:
    key = (kernel, config, dtype, precision, ksize, relu, layout)
    for v in aot.launch_variants():
        if (v.kernel, v.config_name, v.dtype, v.input_precision, v.ksize, v.relu, v.layout) == key:
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
        got = cc.check([arch], [_variant(*c[1:]) for c in cases])
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
    assert smem <= cc.SMEM_LIMIT[case[0]]
    if row["expects_mma"]:
        assert row["hmma"] + row["hgmma"] > 0, "no HMMA/HGMMA in the SASS"
    assert cc.row_failures(row) == []


def test_launch_variants_cover_every_launchable_config():
    variants = aot.launch_variants()
    assert len(set(variants)) == len(variants)
    assert {(v.kernel, v.config_name) for v in variants} == SHIPPED
    for kernel, dtype_name, precision, cfg in launchable_configs():
        mine = [v for v in variants
                if (v.kernel, v.dtype, v.input_precision) == (kernel, dtype_name, precision)]
        assert mine and all(v.config == cfg for v in mine), (kernel, dtype_name, precision)
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
    if kernel == "pointwise_pool":
        out = torch.empty(2, 100, 20, 18, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(pointwise_mod, "_pointwise_pool_kernel", rec)
        pointwise_mod.launch_pointwise_pool(
            x, torch.randn(24, 96, dtype=dt), torch.randn(96), 80, out, 2, 82, v.relu,
            v.input_precision, v.config)
    else:
        k = v.ksize
        out = torch.empty(2, 40, 20, 18, dtype=dt).to(memory_format=mf)
        monkeypatch.setattr(reduce_conv_mod, "_reduce_conv_kernel", rec)
        reduce_conv_mod.launch_reduce_conv(
            x, torch.randn(24, 16, dtype=dt), torch.randn(16), torch.randn(k * k, 16, 32, dtype=dt),
            torch.randn(32), k, out, 8, v.relu, v.input_precision, v.config)
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
                want = "*fp32" if value.dtype == torch.float32 else aot._PTR_TYPE[v.dtype]
                assert sig[name] == want, (v.label(), name)
            elif value == 1:  # the JIT turns an int 1 into a constexpr
                assert sig[name] == "constexpr" and constexprs[name] == 1, (v.label(), name)
            else:
                assert sig[name] == "i32", (v.label(), name)
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
        [sys.executable, "-m", "fused_inception.compile_check", "--arch", "80",
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
    assert len(cc.failures(rows)) == 1


def _good_row(arch=90) -> dict:
    row = cc._empty_row(_variant("reduce_conv", "mma", "float16", "ieee", 3, True, "nhwc"), arch)
    row.update(registers=200, stack=0, local=0, spill_stores=0, spill_loads=0, shared=16384,
               static_shared=0, hmma=8, hgmma=0)
    assert cc.row_failures(row) == []
    return row


@pytest.mark.parametrize("arch", [80, 90])
def test_verdicts(arch):
    limit = cc.SMEM_LIMIT[arch]
    assert limit == {80: 166912, 90: 232448}[arch]
    cases = {
        "smem": dict(shared=limit - 1024 + 1, static_shared=1024),
        "spills": dict(spill_stores=4, spill_loads=4, stack=8),
        "no-MMA": dict(hmma=0, hgmma=0),
        "compile": dict(error="CompilationError: at 1:2:\n  x\nValueError('bad')"),
        "registers": dict(registers=256),
    }
    for word, change in cases.items():
        row = {**_good_row(arch), **change}
        why = cc.row_failures(row)
        assert len(why) == 1 and why[0].startswith(word), (word, why)
        assert len(cc.failures([row, _good_row(arch)])) == 1
    at_limit = {**_good_row(arch), "shared": limit, "static_shared": 0}
    assert cc.row_failures(at_limit) == []
    fp32_ieee = {**_good_row(arch), "expects_mma": False, "hmma": 0}
    assert cc.row_failures(fp32_ieee) == []
    table = cc.format_table([_good_row(arch), {**_good_row(arch), "stack": 8}])
    assert "regs" in table and "FAIL spills" in table and table.count("\n") == 3
