"""The launch/FLOP/byte model of ``python -m fused_inception plan`` (fused_inception.plan)."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fused_inception import plan as P
from fused_inception import plan_report
from fused_inception.kernels.configs import pick_pointwise_config, pick_reduce_conv_config

# DESIGN.md §4: MMAC per image of each Inception block, torchvision variant.
DESIGN_MMAC = {"3a": 122, "3b": 266, "4a": 71, "4b": 83, "4c": 95, "4d": 112, "4e": 157, "5a": 48, "5b": 66}
INCEPTION = tuple(DESIGN_MMAC)


def _by_block(launches):
    out = {}
    for l in launches:
        out.setdefault(l.block, []).append(l)
    return out


def _default_args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    plan_report.add_arguments(parser)
    args = parser.parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


# ---------------------------------------------------------------------------------------------
# FLOPs


def test_block_macs_match_design_table():
    blocks = _by_block(P.eager_launches("torchvision", batch=1))
    for name, mmac in DESIGN_MMAC.items():
        got = sum(l.flops for l in blocks[name]) / 2 / 1e6
        assert abs(got - mmac) <= 1.0, (name, got, mmac)


def test_total_macs_about_1_5_gmac():
    for batch in (1, 256):
        total = sum(l.flops for l in P.eager_launches("torchvision", batch=batch)) / 2 / batch
        assert abs(total / 1.5e9 - 1) <= 0.03, total


def test_fused_useful_flops_equal_eager_per_block():
    for variant in P.VARIANTS:
        eager, fused = _by_block(P.eager_launches(variant)), _by_block(P.fused_launches(variant))
        assert eager.keys() == fused.keys()
        for name in eager:
            assert sum(l.flops for l in eager[name]) == sum(l.flops for l in fused[name]), (variant, name)


def test_executed_flops_are_not_below_useful():
    for dtype in P.DTYPE_BYTES:
        for l in P.fused_launches("torchvision", 256, dtype=dtype):
            assert l.flops <= l.exec_flops <= l.padded_flops, l


# ---------------------------------------------------------------------------------------------
# Launch counts


def test_fused_launches_three_per_block():
    for variant in P.VARIANTS:
        fused = _by_block(P.fused_launches(variant))
        for name in INCEPTION:
            assert [l.kind for l in fused[name]] == ["pointwise_pool", "reduce_conv", "reduce_conv"]
        eager = _by_block(P.eager_launches(variant))
        for group in ("stem", "pool3", "pool4", "head"):  # the fused library swaps only the blocks
            assert fused[group] == [P.Launch(**{**l.to_dict(), "network": "fused"}) for l in eager[group]]


def test_eager_launches_per_block():
    # torchvision: 6 conv units x (conv, BN, ReLU) + branch-4 max-pool + cat
    blocks = _by_block(P.eager_launches("torchvision"))
    for name in INCEPTION:
        kinds = Counter(l.kind for l in blocks[name])
        assert kinds == {"conv": 6, "bn": 6, "relu": 6, "maxpool": 1, "cat": 1}, (name, kinds)
        assert len(blocks[name]) == 20
    assert len(blocks["stem"]) == 3 * 3 + 2 and len(blocks["head"]) == 2
    assert len(blocks["pool3"]) == len(blocks["pool4"]) == 1
    assert len(P.eager_launches("torchvision")) == 11 + 9 * 20 + 2 + 2

    # paper: conv, bias add_ (ATen's cuDNN path), ReLU; or conv with the bias fused
    blocks = _by_block(P.eager_launches("paper"))
    for name in INCEPTION:
        assert Counter(l.kind for l in blocks[name]) == {"conv": 6, "bias_add": 6, "relu": 6, "maxpool": 1, "cat": 1}
    assert Counter(l.kind for l in blocks["stem"]) == {"conv": 3, "bias_add": 3, "relu": 3, "maxpool": 2, "lrn": 16}
    fused_bias = _by_block(P.eager_launches("paper", bias_add_separate=False))
    assert all(len(fused_bias[name]) == 14 for name in INCEPTION)


# ---------------------------------------------------------------------------------------------
# Bytes


@pytest.mark.parametrize("variant", P.VARIANTS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_fused_bytes_below_eager_every_block(variant, dtype):
    plan = P.build_plan(variant, 256, 224, dtype)
    for b in plan.blocks:
        if b.block in INCEPTION:
            assert b.fused_hbm_bytes < b.eager_hbm_bytes, b
            assert b.fused_hbm_bytes_high < b.eager_hbm_bytes, b
        else:
            assert b.fused_hbm_bytes == b.eager_hbm_bytes, b


def test_block_3a_by_hand():
    """Inception 3a, torchvision, batch 256, bf16, computed here independently of the module."""
    n, hw, e = 256, 28 * 28, 2
    ch = n * hw * e  # bytes of one activation channel
    # eager, in activation channels: conv reads x, writes y; BN and ReLU read and write y
    b1 = (192 + 64) + 2 * 64 + 2 * 64
    b2_0 = (192 + 96) + 4 * 96
    b2_1 = (96 + 128) + 4 * 128
    b3_0 = (192 + 16) + 4 * 16
    b3_1 = (16 + 32) + 4 * 32
    pool = 192 + 192
    b4_1 = (192 + 32) + 4 * 32
    cat = 2 * 256
    conv_w = 64 * 192 + 96 * 192 + 128 * 96 * 9 + 16 * 192 + 32 * 16 * 9 + 32 * 192
    bn_params = 4 * (64 + 96 + 128 + 16 + 32 + 32)
    eager_bytes = (b1 + b2_0 + b2_1 + b3_0 + b3_1 + pool + b4_1 + cat) * ch + (conv_w + bn_params) * e
    assert eager_bytes == 1_451_804_544

    # fused: each launch reads x once and writes its channels; weights in bf16, biases in fp32
    pw = (192 + 64 + 32) * ch + 192 * 96 * e + 96 * 4
    r3 = (192 + 128) * ch + (192 * 96 + 9 * 96 * 128) * e + (96 + 128) * 4
    r5 = (192 + 32) * ch + (192 * 16 + 9 * 16 * 32) * e + (16 + 32) * 4
    fused_bytes = pw + r3 + r5

    plan = P.build_plan("torchvision", 256, 224, "bfloat16")
    row = next(b for b in plan.blocks if b.block == "3a")
    assert row.eager_hbm_bytes == eager_bytes
    assert row.fused_hbm_bytes == fused_bytes
    assert [l.hbm_bytes for l in plan.fused if l.block == "3a"] == [pw, r3, r5]

    # FLOPs. bf16 dots are "ieee" and take the "mma" configs: pointwise 64/64/32; reduce_conv
    # BLOCK_M 64, BLOCK_HALO 32, BLOCK_R 32, BLOCK_N 32, BLOCK_K 32.
    assert P.dot_precision("bfloat16", True) == "ieee"
    pw_cfg = pick_pointwise_config("bfloat16", "ieee")
    assert (pw_cfg.BLOCK_M, pw_cfg.BLOCK_N, pw_cfg.BLOCK_K) == (64, 64, 32)
    cfg = pick_reduce_conv_config("bfloat16", "ieee")
    assert (cfg.BLOCK_M, cfg.BLOCK_HALO, cfg.BLOCK_R, cfg.BLOCK_N, cfg.BLOCK_K) == (64, 32, 32, 32, 32)
    # Tiles: 64 consecutive pixels of the flattened (n, h, w) index; M = 256 * 784 = 200704 = 3136 x 64.
    # Both k x k convs of 3a are 3x3 (torchvision): OFF = 1*28 + 1 = 29, so a tile reduces a run of
    # 64 + 2*29 = 122 pixels, rounded up to BLOCK_HALO 32 -> 128 rows.
    tiles = 3136
    assert tiles * 64 == n * hw
    assert cfg.halo_rows(3, 28) == 128
    useful = 2 * n * hw * (192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 9 * 16 * 32 + 192 * 32)
    exec_ = 2 * (n * hw * 192 * 96  # pointwise: M is a multiple of BLOCK_M 64, no rounding
                 + tiles * (128 * 192 * 96 + 64 * 9 * 96 * 128)  # branch 2: reduce on 128 rows, conv on 64
                 + tiles * (128 * 192 * 16 + 64 * 9 * 16 * 32))  # branch 3
    assert row.useful_flops == useful
    assert row.fused_exec_flops == exec_
    # channel padding: pool proj 32 -> 64 columns (BLOCK_N 64); branch 3: R 16 -> 32 (BLOCK_R 32),
    # C 32 stays (BLOCK_N 32); branch 2 (96 / 128 / C_in 192) needs none
    padded = 2 * (n * hw * 192 * 128 + tiles * (128 * 192 * 96 + 64 * 9 * 96 * 128)
                  + tiles * (128 * 192 * 32 + 64 * 9 * 32 * 32))
    assert row.fused_padded_flops == padded

    # halo: each tile loads 2 x 29 pixels beyond its own; the first tile's 29 below pixel 0 and the
    # last tile's 29 past pixel M - 1 are masked: 3136 x 58 - 58 pixels of 192 channels
    halo_px = tiles * 58 - 58
    r3_launch, r5_launch = [l for l in plan.fused if l.block == "3a"][1:]
    assert r3_launch.halo_bytes == r5_launch.halo_bytes == halo_px * 192 * e == 69_822_720
    assert row.halo_bytes == 2 * 69_822_720
    # scratch of branch 2: 128 x 96 written per tile; read for 128 / 32 = 4 column blocks x 9 taps
    # x 64 rows x 96 reduced channels
    assert r3_launch.l2_bytes == tiles * (128 * 96 + 4 * 9 * 64 * 96) * e == 1_464_336_384
    # branch 3: R padded to 32; 1 column block
    assert r5_launch.l2_bytes == tiles * (128 * 32 + 1 * 9 * 64 * 32) * e
    # footprint: min(3136 tiles, 2 x 132 SMs) programs x 128 rows x R_pad
    assert r3_launch.scratch_bytes == 2 * 132 * 128 * 96 * e == 6_488_064
    assert r3_launch.hbm_bytes_high == r3 + 69_822_720 + 6_488_064


def test_fp32_precision_picks_config():
    """float32: TF32 dots (PyTorch's default) take the "tf32" configs, IEEE dots the "fma" ones."""
    assert P.dot_precision("float32", True) == "tf32" and P.dot_precision("float32", False) == "ieee"
    spec = P.block_shapes("torchvision")["3a"][0]
    tf32 = P.fused_block_launches("3a", spec, 256, 28, 28, "float32", tf32=True)
    ieee = P.fused_block_launches("3a", spec, 256, 28, 28, "float32", tf32=False)
    assert "tf32, tf32" in tf32[1].detail and "fma, ieee" in ieee[1].detail
    # branch 3 (R 16, C 32): BLOCK_R 16 and BLOCK_N 16/32 pad nothing in either config
    assert tf32[2].padded_flops == tf32[2].exec_flops and ieee[2].padded_flops == ieee[2].exec_flops
    # "fma" tiles 32 pixels: the halo run is a larger share of each tile, so more executed work
    assert ieee[1].exec_flops > tf32[1].exec_flops
    # minimal HBM bytes do not depend on the tiling
    assert [l.hbm_bytes for l in tf32] == [l.hbm_bytes for l in ieee]
    # the x tile is reloaded per BLOCK_R block: 96 / 16 = 6 times with "fma", 3 with "mma"
    assert ieee[1].cache_reread_bytes > tf32[1].cache_reread_bytes
    plan = P.build_plan(dtype="float32", tf32=False)
    assert plan.to_dict()["config"]["input_precision"] == "ieee"
    assert all("fma, ieee" in l.detail for l in plan.fused if l.kind == "reduce_conv")


def _simulate_reduce_conv(n, h, w, cin, r, c, k, cfg, e):
    """Walk kernels/reduce_conv.py's loops tile by tile for a small shape and count, independently
    of the closed forms in plan.reduce_conv_launch: dot MACs (masked rows included), MACs on real
    channels, input pixels loaded, scratch elements written and read."""
    m = n * h * w
    pad = k // 2
    off = pad * w + pad
    halo_len = cfg.BLOCK_M + 2 * off
    halo_rows = -(-halo_len // cfg.BLOCK_HALO) * cfg.BLOCK_HALO
    r_pad = -(-r // cfg.BLOCK_R) * cfg.BLOCK_R
    tiles = -(-m // cfg.BLOCK_M)
    exec_macs = padded_macs = x_px = l2 = w_elems = 0

    def inside(lo, size, hi):  # length of [lo, lo + size) within [0, hi)
        return max(0, min(lo + size, hi) - max(lo, 0))

    for tile in range(tiles):
        p0 = tile * cfg.BLOCK_M
        for q0 in range(0, halo_rows, cfg.BLOCK_HALO):
            loaded = sum(1 for q in range(q0, q0 + cfg.BLOCK_HALO)
                         if q < halo_len and 0 <= p0 - off + q < m)
            for r0 in range(0, r_pad, cfg.BLOCK_R):
                x_px += loaded
                for k0 in range(0, cin, cfg.BLOCK_K):
                    padded_macs += cfg.BLOCK_HALO * cfg.BLOCK_K * cfg.BLOCK_R
                    exec_macs += cfg.BLOCK_HALO * (min(cin, k0 + cfg.BLOCK_K) - k0) * (min(r, r0 + cfg.BLOCK_R) - r0)
                    w_elems += inside(k0, cfg.BLOCK_K, cin) * inside(r0, cfg.BLOCK_R, r)
                l2 += cfg.BLOCK_HALO * cfg.BLOCK_R  # store
        for n0 in range(0, c, cfg.BLOCK_N):
            for tap in range(k * k):
                for r0 in range(0, r_pad, cfg.BLOCK_R):
                    l2 += cfg.BLOCK_M * cfg.BLOCK_R  # scratch load
                    # weight block at row tap*R + r0 of [k*k*R, C], boundary-checked
                    w_elems += inside(tap * r + r0, cfg.BLOCK_R, k * k * r) * inside(n0, cfg.BLOCK_N, c)
                    padded_macs += cfg.BLOCK_M * cfg.BLOCK_R * cfg.BLOCK_N
                    exec_macs += cfg.BLOCK_M * (min(r, r0 + cfg.BLOCK_R) - r0) * (min(c, n0 + cfg.BLOCK_N) - n0)
    r_blocks = r_pad // cfg.BLOCK_R
    return dict(exec_flops=2 * exec_macs, padded_flops=2 * padded_macs, l2_bytes=l2 * e,
                halo_bytes=(x_px // r_blocks - m) * cin * e, tiles=tiles,
                cache_reread_bytes=(x_px - m) * cin * e + (w_elems - cin * r - k * k * r * c) * e)


@pytest.mark.parametrize("shape", [
    (1, 7, 7, 20, 12, 40, 5),  # OFF = 16; one tile clipped at both ends
    (2, 7, 7, 24, 16, 32, 3),
    (3, 14, 14, 40, 40, 70, 3),
    (1, 5, 5, 8, 8, 8, 5),  # the whole tensor is shorter than one run
    (2, 9, 11, 17, 33, 65, 5),
])
@pytest.mark.parametrize("config", ["mma", "fma"])
def test_reduce_conv_launch_matches_simulated_loops(shape, config):
    from fused_inception.kernels.configs import REDUCE_CONV_CONFIGS

    n, h, w, cin, r, c, k = shape
    cfg = REDUCE_CONV_CONFIGS[config]
    sim = _simulate_reduce_conv(n, h, w, cin, r, c, k, cfg, 2)
    launch = P.reduce_conv_launch("x", "branch2", cin, r, c, k, n, h, w, "bfloat16", cfg, sms=132)
    for key in ("exec_flops", "padded_flops", "l2_bytes", "halo_bytes", "cache_reread_bytes"):
        assert getattr(launch, key) == sim[key], (key, getattr(launch, key), sim[key])
    r_pad = -(-r // cfg.BLOCK_R) * cfg.BLOCK_R
    assert launch.scratch_bytes == min(sim["tiles"], 264) * cfg.halo_rows(k, w) * r_pad * 2


# ---------------------------------------------------------------------------------------------
# Shapes and counts against the reference model


@pytest.mark.parametrize("variant", P.VARIANTS)
@pytest.mark.parametrize("size", [224, 96])
def test_eager_plan_matches_reference_model(variant, size):
    """Run fused_inception.models' GoogLeNet once (batch 1, CPU) with hooks: the MACs and the
    number of conv/BN/pool/LRN/linear calls must equal the plan's."""
    from fused_inception.models import googlenet

    model = googlenet(variant, aux_logits=False).eval()
    macs, calls, shapes = 0, Counter(), {}

    def hook(mod, inp, out):
        nonlocal macs
        calls[type(mod).__name__] += 1
        if isinstance(mod, nn.Conv2d):
            macs += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            macs += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.MaxPool2d, nn.LocalResponseNorm))]
    for name in INCEPTION:
        mod = getattr(model, f"inception{name}")
        handles.append(mod.register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, (tuple(i[0].shape[1:]), tuple(o.shape[1:])))))
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    for h in handles:
        h.remove()

    launches = P.eager_launches(variant, batch=1, size=size)
    kinds = Counter(l.kind for l in launches)
    assert sum(l.flops for l in launches) == 2 * macs
    assert kinds["conv"] == calls["Conv2d"]
    assert kinds["linear"] == calls["Linear"]
    assert kinds["bn"] == calls["BatchNorm2d"]
    assert kinds["maxpool"] == calls["MaxPool2d"]
    assert kinds["lrn"] == 8 * calls["LocalResponseNorm"]
    for name, (spec, h, w) in P.block_shapes(variant, size).items():
        assert shapes[name] == ((spec.in_channels, h, w), (spec.out_channels, h, w)), name


def test_pool_out_matches_torch():
    for size in range(5, 40):
        for k, s, pad in ((3, 2, 0), (2, 2, 0), (3, 1, 1)):
            for ceil in (False, True):
                want = F.max_pool2d(torch.zeros(1, 1, size, size), k, s, pad, ceil_mode=ceil).shape[-1]
                assert P.pool_out(size, k, s, pad, ceil) == want, (size, k, s, pad, ceil)


# ---------------------------------------------------------------------------------------------
# Roofline


def test_roofline_arithmetic():
    gpu = P.H100_SXM
    mem = P.Launch("eager", "x", "mem", "relu", 0, 3_350_000)  # 1 us at 3.35 TB/s
    mm = P.Launch("eager", "x", "mm", "conv", 989_400_000, 0, math="conv")  # 1 us at 989.4 TFLOP/s
    assert P.launch_time(mem, gpu, "bfloat16") == pytest.approx(1e-6)
    assert P.launch_time(mm, gpu, "bfloat16") == pytest.approx(1e-6)
    assert P.launch_time(mm, gpu, "float32", tf32=True) == pytest.approx(2e-6)
    assert P.launch_time(mm, gpu, "float32", tf32=False) == pytest.approx(989.4 / 66.9 * 1e-6)
    lin = P.Launch("eager", "x", "fc", "linear", 66_900_000, 0, math="matmul")
    assert P.launch_time(lin, gpu, "float32", tf32=True) == pytest.approx(1e-6)  # matmul stays fp32
    r = P.roofline([mem, mm], gpu, "bfloat16", batch=10, launch_overhead_us=3.0)
    assert r.roofline_s == pytest.approx(2e-6) and r.total_s == pytest.approx(8e-6)
    assert r.img_per_s == pytest.approx(10 / 8e-6)
    assert P.roofline([mem], P.H200_SXM, "bfloat16", 1, launch_overhead_us=0).memory_s == pytest.approx(3.35 / 4.8 * 1e-6)


def test_fused_faster_than_eager_on_the_roofline():
    plan = P.build_plan()
    rs = {(r.gpu, r.network): r for r in plan.rooflines}
    for gpu in P.GPUS:
        assert rs[(gpu.name, "fused")].roofline_s < rs[(gpu.name, "eager")].roofline_s
        assert rs[(gpu.name, "fused")].roofline_s <= rs[(gpu.name, "fused-high")].roofline_s
    # H200 has the same FLOP/s and more bandwidth: never slower
    for net in ("eager", "fused"):
        assert rs[("H200 SXM", net)].roofline_s < rs[("H100 SXM", net)].roofline_s


# ---------------------------------------------------------------------------------------------
# CLI and JSON


def test_json_round_trip(tmp_path, capsys):
    path = tmp_path / "plan.json"
    assert plan_report.run(_default_args(json=str(path))) == 0
    data = json.loads(path.read_text())
    plan = P.build_plan()
    assert data == json.loads(json.dumps(plan.to_dict()))
    assert [P.Launch.from_dict(d) for d in data["launches"]["eager"]] == plan.eager
    assert [P.Launch.from_dict(d) for d in data["launches"]["fused"]] == plan.fused
    assert data["totals"]["fused"]["launches"] == len(plan.fused)
    assert data["config"] == {"variant": "torchvision", "batch": 256, "size": 224, "dtype": "bfloat16",
                              "tf32": True, "input_precision": "ieee", "launch_overhead_us": 3.0,
                              "l2_tbps": None}
    assert {r["gpu"] for r in data["roofline"]} == {"H100 SXM", "H200 SXM"}


def test_run_defaults_prints_totals(capsys):
    t0 = time.perf_counter()
    assert plan_report.run(_default_args()) == 0
    assert time.perf_counter() - t0 < 10
    out = capsys.readouterr().out
    assert "total" in out and "195" in out and "42" in out
    assert "H100 SXM" in out and "H200 SXM" in out and "img/s" in out
    assert "datasheet" in out and "Assumptions" in out


def test_run_options(capsys):
    args = _default_args(variant="paper", dtype="float32", tf32=False, per_launch=True, l2_tbps=7.0, batch=8)
    assert plan_report.run(args) == 0
    out = capsys.readouterr().out
    assert "Every fused launch" in out and "lrn1.pad fill_" in out
    assert plan_report.run(_default_args(batch=0)) == 2
