"""bench's scopes: the module each one times, and a tiny run of the stem (the part of the network
before inception3a, whose conv units fuse() fuses in the torchvision variant)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from fused_inception.models import googlenet
from fused_inception.tools.bench import command as bench
from fused_inception.tools.bench import run as bench_run
from fused_inception.tools.bench.cases import STEM, block_input_shapes, scope_input_shape, scope_module


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_stem_scope_is_what_the_network_feeds_inception3a(variant):
    torch.manual_seed(0)
    model = googlenet(variant=variant, init_weights=True).eval()
    with torch.no_grad():  # nonzero BN statistics, so that a skipped BN would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    seen = []
    handle = model.inception3a.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model(x)
        stem = scope_module(model, STEM)
        out = stem(x)
    handle.remove()
    assert torch.equal(out, seen[0])
    # the stem shares the network's modules (a bench case times the network's own weights)
    assert stem[0] is model.conv1 and any(m is model.conv3 for m in stem)
    assert (variant == "paper") == any(isinstance(m, torch.nn.LocalResponseNorm) for m in stem)
    shapes = block_input_shapes(model, 64)
    assert scope_input_shape(STEM, 64, shapes) == (3, 64, 64) == scope_input_shape("net", 64, shapes)
    assert scope_input_shape("3a", 64, shapes) == shapes["3a"] == tuple(out.shape[1:])
    assert scope_module(model, "4d") is model.inception4d and scope_module(model, "net") is model


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_bench_times_the_stem(variant, tmp_path):
    """The stem scope times its baseline methods and, in the torchvision variant, its fused ones
    on the stem as fuse() leaves it in the network (three FusedStemUnits); the paper variant's stem
    is not fused, so its fused methods are not recorded, and the notes say why."""
    out = tmp_path / "stem.json"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--size", "64", "--batch", "1", "--dtypes", "fp32", "--methods",
                              "eager,eager-cl,fused,fused-cl", "--warmup", "0", "--repeat", "1", "--rep-ms", "0",
                              "--no-tf32", "--no-progress", "--scopes", "stem,3a", "--modes", "infer",
                              "--variant", variant, "--json", str(out)])
    assert bench.run(args) == 0
    report = json.loads(out.read_text())
    cases = {c["scope"]: c for c in report["cases"]}
    assert cases[STEM]["input_shape"] == [1, 3, 64, 64]
    res = cases[STEM]["results"]
    fused = variant == "torchvision"
    assert set(res) == ({"eager", "eager-cl", "fused", "fused-cl"} if fused else {"eager", "eager-cl"})
    assert all("error" not in r and r["median_ms"] > 0 for r in res.values())
    assert all(r["check"] == "ok" for name, r in res.items() if name != "eager")
    if fused:
        assert res["fused-cl"]["fused_stem_units"] == 3 and res["fused-cl"]["fused_blocks"] == 0
    assert set(cases["3a"]["results"]) == {"eager", "eager-cl", "fused", "fused-cl"}  # a block keeps its own
    assert report["notes"].count(bench_run.STEM_NOT_FUSED) == (0 if fused else 1)


def test_case_methods_of_the_stem():
    """What a case times (and the progress bar counts): eager first; the stem without fused
    methods where fuse() leaves it unfused, and never fused under torch.compile."""
    methods = ["fused", "compile", "eager-cl", "eager", "fused-cl", "fused-compile"]
    assert bench_run.case_methods(STEM, methods, stem_fused=False) == ["eager", "compile", "eager-cl"]
    assert bench_run.case_methods(STEM, methods, stem_fused=True) == ["eager", "fused", "compile", "eager-cl",
                                                                      "fused-cl"]
    assert bench_run.case_methods("3a", methods, stem_fused=False) == ["eager", *methods[:3], *methods[4:]]
