"""The fused GoogLeNet stem: FusedStemUnit's paths (the epilogue launch in inference, against
float64; the original modules otherwise, exactly), the pool geometry it accepts, and what
fuse/unfuse do to a GoogLeNet's stem. The kernel itself: tests/kernels/test_bn_relu_pool.py."""

from __future__ import annotations

import copy
import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fused_inception as fi
from block_helpers import DEVICE, random_input
from fused_inception import stem
from fused_inception.forward import count_launches
from fused_inception.models import googlenet, randomize_
from fused_inception.models.inception import BasicConv2d
from fused_inception.tolerances import assert_close

def test_pool_output_size_is_max_pool2ds():
    for size in range(1, 14):
        for kernel, stride, padding, ceil_mode in [(3, 2, 0, True), (3, 2, 0, False), (3, 2, 1, True),
                                                  (3, 2, 1, False), (2, 2, 0, True), (3, 1, 1, False)]:
            if padding > kernel // 2 or size + 2 * padding < kernel:
                continue
            expected = F.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride, padding, ceil_mode=ceil_mode).shape[-1]
            assert stem.pool_output_size(size, kernel, stride, padding, ceil_mode) == expected


def test_pool_geometry_refuses_what_the_kernel_cannot_pool():
    assert stem.pool_geometry(nn.MaxPool2d(3, 2, ceil_mode=True)) == (3, 2, 0, True)
    assert stem.pool_geometry(nn.MaxPool2d(2)) == (2, 2, 0, False)  # stride defaults to the kernel
    for pool, error in ((nn.MaxPool2d((3, 2), 2), "square"), (nn.MaxPool2d(3, 2, dilation=2), "dilat"),
                        (nn.MaxPool2d(3, 2, return_indices=True), "indices"), (nn.MaxPool2d(3, 2, 2), "half")):
        with pytest.raises(ValueError, match=error):
            stem.pool_geometry(pool)


# --- FusedStemUnit --------------------------------------------------------------------------------

def _unit(gen: torch.Generator, c_in: int = 3, c_out: int = 6) -> BasicConv2d:
    unit = BasicConv2d(c_in, c_out, 3, padding=1, bias=False, batch_norm=True)
    randomize_(unit, gen)
    with torch.no_grad():
        unit.bn.weight.mul_(torch.where(torch.arange(c_out) % 2 == 0, 1.0, -1.0))  # gamma of either sign
    return unit.eval()


@pytest.fixture
def launches(monkeypatch):
    """The epilogue launches the calls of the test made (counted where stem.py calls them)."""
    made = []
    real = stem.launch_bn_relu_pool

    def counting(*args, **kwargs):
        made.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(stem, "launch_bn_relu_pool", counting)
    return made


@pytest.mark.parametrize("with_pool", [True, False], ids=["pool", "no-pool"])
def test_unit_inference_launches_the_epilogue(with_pool, gen, launches):
    """Eval, no grad: the conv and one epilogue launch, against the unit (and pool) in float64."""
    unit = _unit(gen)
    pool = nn.MaxPool2d(3, 2, ceil_mode=True) if with_pool else None
    fused = stem.FusedStemUnit(copy.deepcopy(unit), pool, "maxpool" if with_pool else None).to(DEVICE)
    ref_unit = copy.deepcopy(unit).double()
    x = random_input((2, 3, 9, 8), gen)
    with torch.no_grad():
        ref = ref_unit(x)
        ref = pool(ref) if pool is not None else ref
        out = fused(x.float().to(DEVICE).contiguous(memory_format=torch.channels_last))
    assert len(launches) == 1
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_close(out, ref, "float32", "fused stem unit")


def _modules_output(unit: nn.Module, pool: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    out = unit(x)
    return pool(out) if pool is not None else out


FALLBACKS = ["bn-training", "input-grad", "param-grad", "hooks", "float64", "int32", "cpu-no-interpreter"]


@pytest.mark.parametrize("case", FALLBACKS)
def test_unit_runs_the_original_modules_otherwise(case, gen, launches, monkeypatch):
    """No launch, and exactly the unit's (and pool's) own result, gradients and BN buffers, where
    the epilogue does not apply: BN in training, autograd recording (an input that requires grad,
    or only the parameters, as for conv1 under the image), a hook (which fires, with a
    FusedFallbackWarning), float64, a conv output beyond int32 offsets (faked), CPU tensors without
    Triton's interpreter. On the test device (the GPU where there is one), except the last."""
    device = "cpu" if case == "cpu-no-interpreter" else DEVICE
    unit, pool = _unit(gen), nn.MaxPool2d(3, 2, ceil_mode=True)
    plain_unit, plain_pool = copy.deepcopy(unit).to(device), copy.deepcopy(pool)
    fused = stem.FusedStemUnit(unit, pool, "maxpool").to(device)
    x = random_input((2, 3, 9, 8), gen).float().to(device)
    fired = []
    if case == "bn-training":
        fused.train()
        plain_unit.train()
    elif case == "hooks":
        fused.bn.register_forward_hook(lambda *args: fired.append("bn"))
    elif case == "float64":
        fused.double()
        plain_unit.double()
        x = x.double()
    elif case == "int32":
        monkeypatch.setattr(stem, "int32_offsets", lambda t: False)
    elif case == "cpu-no-interpreter":
        monkeypatch.setenv("TRITON_INTERPRET", "0")
    input_grad = case == "input-grad"
    grad = input_grad or case == "param-grad"
    xs = [x.clone().requires_grad_(input_grad) for _ in range(2)]
    with torch.set_grad_enabled(grad or case == "bn-training"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fused(xs[0])
        expected = _modules_output(plain_unit, plain_pool, xs[1])
    assert launches == []
    assert torch.equal(out, expected)
    if grad:
        out.sum().backward()
        expected.sum().backward()
        if input_grad:
            assert torch.equal(xs[0].grad, xs[1].grad)
        plain_params = dict(plain_unit.named_parameters())
        for name, p in fused.named_parameters():
            assert p.grad is not None and torch.equal(p.grad, plain_params[name].grad), name
    for name, b in plain_unit.named_buffers():
        assert torch.equal(dict(fused.named_buffers())[name], b), name
    assert fired == (["bn"] if case == "hooks" else [])
    fallback = [w for w in caught if issubclass(w.category, fi.FusedFallbackWarning)]
    assert len(fallback) == (1 if case == "hooks" else 0)
    if case == "hooks":
        assert "'unit.bn'" in str(fallback[0].message)


def test_a_child_replaced_on_the_unit_is_used_on_every_path_and_kept_by_unfuse(gen, launches):
    """A BN set on the FusedStemUnit after fusing: the fused path and the modules path both use it,
    and to_module() returns the unit holding it."""
    unit = _unit(gen)
    fused = stem.FusedStemUnit(unit).to(DEVICE)
    new_bn = copy.deepcopy(fused.bn)
    with torch.no_grad():
        new_bn.bias.add_(3.0)
    fused.bn = new_bn
    x = random_input((2, 3, 6, 5), gen).float().to(DEVICE)
    expected = torch.relu(new_bn(fused.conv(x))).detach()
    with torch.no_grad():
        assert_close(fused(x).double(), expected.double(), "float32", "fused path")
    assert len(launches) == 1
    assert torch.equal(fused(x), torch.relu(new_bn(fused.conv(x))))  # grad on: the modules path
    assert fused.to_module().bn is new_bn


def test_units_launch_in_turn_from_threads(gen, launches):
    """Two threads running fused units at once (under the CPU's interpreter the launches take
    turns): each result is its own unit's."""
    units = [stem.FusedStemUnit(_unit(gen), nn.MaxPool2d(3, 2, ceil_mode=True), "maxpool").to(DEVICE)
             for _ in range(2)]
    xs = [random_input((2, 3, 9, 8), gen).float().to(DEVICE) for _ in range(2)]
    with torch.no_grad():
        expected = [u.pool(torch.relu(u.bn(u.conv(x)))) for u, x in zip(units, xs)]
        results: list = [None, None]

        def run(i: int) -> None:
            with torch.no_grad():
                for _ in range(20):
                    results[i] = units[i](xs[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for out, ref in zip(results, expected):
        assert_close(out.double(), ref.double(), "float32", "threaded unit")
    assert len(launches) == 40


def test_unit_refuses_what_it_cannot_fuse(gen):
    no_bn = BasicConv2d(3, 4, 1, bias=True, batch_norm=False)
    no_relu = BasicConv2d(3, 4, 1, bias=False, batch_norm=True, relu=False)
    for unit in (no_bn, no_relu, nn.Conv2d(3, 4, 1)):
        with pytest.raises(ValueError, match="not a fusable stem conv unit"):
            stem.FusedStemUnit(unit)
    with pytest.raises(ValueError, match="slot"):
        stem.FusedStemUnit(_unit(gen), nn.MaxPool2d(3, 2))


# --- fuse / unfuse -------------------------------------------------------------------------------

def test_fuse_swaps_a_googlenet_stem_and_unfuse_restores_it(gen):
    model = randomize_(googlenet("torchvision", aux_logits=False, num_classes=10, init_weights=False), gen).eval()
    fused, report = fi.fuse_with_report(model)
    assert report.stem == [("conv1", "maxpool1"), ("conv2", None), ("conv3", "maxpool2")]
    assert "3 stem unit(s) fused" in str(report)
    for slot, pool_slot in stem.STEM_SLOTS:
        unit = getattr(fused, slot)
        assert isinstance(unit, stem.FusedStemUnit) and unit.pool_slot == pool_slot
        if pool_slot:
            assert isinstance(getattr(fused, pool_slot), nn.Identity)
    assert list(fused.state_dict()) == list(model.state_dict())
    # fusing again leaves the fused stem as it is
    again, report_again = fi.fuse_with_report(fused)
    assert report_again.stem == [] and not any("stem" in reason for _, reason in report_again.skipped)
    assert all(type(getattr(again, slot)) is stem.FusedStemUnit for slot, _ in stem.STEM_SLOTS)
    restored = fi.unfuse(fused)
    assert [(n, type(m)) for n, m in restored.named_modules()] == [(n, type(m)) for n, m in model.named_modules()]
    for name, t in model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], t), name


def test_fuse_leaves_the_paper_stem_and_hooked_units(gen):
    paper = googlenet("paper", aux_logits=False, num_classes=10)
    assert fi.fuse_with_report(paper)[1].stem == []
    model = googlenet("torchvision", aux_logits=False, num_classes=10).eval()
    model.conv2.register_forward_hook(lambda *args: None)
    fused, report = fi.fuse_with_report(model)
    assert report.stem == [("conv1", "maxpool1"), ("conv3", "maxpool2")]
    assert [name for name, _ in report.skipped] == ["conv2"]
    assert "hooks" in dict(report.skipped)["conv2"]
    assert type(fused.conv2) is BasicConv2d


def test_fused_stem_output_is_what_inception3a_receives(gen, launches):
    """The fused network's stem (eval, interpreter) against the float64 network's, three launches."""
    model = randomize_(googlenet("torchvision", aux_logits=False, num_classes=10, init_weights=False), gen).eval()
    fused = fi.fuse(model).to(DEVICE)
    ref = copy.deepcopy(model).double()
    x = random_input((1, 3, 40, 40), gen)
    y, y_ref = x.float().to(DEVICE).contiguous(memory_format=torch.channels_last), x
    with torch.no_grad(), count_launches() as counted:
        for module, ref_module in zip(fused.stem_modules(), ref.stem_modules()):
            y, y_ref = module(y), ref_module(y_ref)
    assert len(launches) == 3 and (counted.bn_relu_pool, counted.total) == (3, 3)
    assert_close(y, y_ref, "float32", "stem output")
