"""Hooks and parametrizations are never bypassed silently: a hook the fused launch would skip makes
the block run its original modules for that call (one FusedFallbackWarning per call, the hook fires
as in the plain block); ``torch.nn.utils.parametrize`` weights are read through the parametrization,
once per call; torchvision's FrozenBatchNorm2d is folded. Triton interpreter on the CPU."""

from __future__ import annotations

import contextlib
import copy
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, prune

import fused_inception as fi
from block_helpers import SMALL, SMALL_NO_BN, WIDE, random_input
from fused_inception.hooks import FusedFallbackWarning
from fused_inception.models.randomize import random_block
from fused_inception.module import record_paths
from fused_inception.tolerances import assert_close, assert_close_to_baseline
from fused_inception.spec import InceptionSpec

SHAPE = (2, 8, 4, 5)


def _pair(spec: InceptionSpec, gen: torch.Generator) -> tuple[nn.Module, fi.FusedInception]:
    """(a float32 plain block in eval, a fused deep copy of it)."""
    block = random_block(spec, gen).float().eval()
    return block, fi.FusedInception.from_module(copy.deepcopy(block))


@pytest.fixture
def exit_stack():
    """Context managers entered in a test's middle, left at its end (``record_paths`` from the
    moment a test starts counting)."""
    with contextlib.ExitStack() as stack:
        yield stack


def _no_fallback(fn):
    """Run ``fn`` with FusedFallbackWarning turned into an error: the fused path must run."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FusedFallbackWarning)
        return fn()


def test_forward_hook_on_an_inner_conv_fires_once_per_call(gen, exit_stack, triton_tactic):
    block, fused = _pair(SMALL, gen)
    seen = []
    handle = fused.branch2[1].conv.register_forward_hook(lambda m, inp, out: seen.append(out.shape))
    x = random_input(SHAPE, gen).float()
    calls = exit_stack.enter_context(record_paths())
    with torch.no_grad():
        for call in range(2):
            with pytest.warns(FusedFallbackWarning, match=r"forward hook .* on 'branch2.1.conv'") as record:
                out = fused(x)
            assert len([w for w in record if w.category is FusedFallbackWarning]) == 1
            assert torch.equal(out, block(x))
        assert seen == [torch.Size([2, 5, 4, 5])] * 2 and [path for path, _ in calls] == ["modules"] * 2
        handle.remove()
        out = _no_fallback(lambda: fused(x))
    assert len(seen) == 2 and [path for path, _ in calls] == ["modules"] * 2 + ["fused"]
    assert_close(out, copy.deepcopy(block).double()(x.double()), "float32", "fused again after the hook is removed")


def test_forward_pre_hook_changing_an_inner_input_is_honoured(gen):
    block, fused = _pair(SMALL, gen)
    without_hook = copy.deepcopy(block)
    for module in (block, fused):
        module.branch3[1].conv.register_forward_pre_hook(lambda m, args: (args[0] * 2 + 1,))
    x = random_input(SHAPE, gen).float()
    with torch.no_grad():
        with pytest.warns(FusedFallbackWarning, match="forward pre-hook"):
            out = fused(x)
        assert torch.equal(out, block(x))
        assert not torch.allclose(out, without_hook(x))  # the hook changes the output: the test can fail


def test_hooks_on_the_fused_block_itself_run_on_the_fused_path(gen, exit_stack, triton_tactic):
    """Pre-hook and forward hook on the FusedInception: Module.__call__ runs them around the fused op."""
    block, fused = _pair(SMALL, gen)
    ref = copy.deepcopy(block).double()
    seen = []
    for module in (fused, ref):
        module.register_forward_pre_hook(lambda m, args: (-args[0],))
        module.register_forward_hook(lambda m, args, out: seen.append(1) or out + 1)
    calls = exit_stack.enter_context(record_paths())
    x = random_input(SHAPE, gen)
    with torch.no_grad():
        out = _no_fallback(lambda: fused(x.float()))
        assert_close(out, ref(x), "float32", "hooks on the fused block")
    assert calls == [("fused", torch.float32)] and seen == [1, 1]


def test_backward_hook_on_an_inner_module_fires(gen):
    # with BN: a full backward hook's output must not meet the in-place ReLU (in the plain block too)
    block, fused = _pair(SMALL, gen)
    grads = {}

    def hook(name):
        def record(module, grad_input, grad_output):
            grads[name] = grad_output[0]
        return record

    for name, module in (("plain", block), ("fused", fused)):
        module.branch1.conv.register_full_backward_hook(hook(name))
    x = random_input(SHAPE, gen).float()
    x_fused, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    with pytest.warns(FusedFallbackWarning, match="backward hook"):
        fused(x_fused).sum().backward()
    block(x_plain).sum().backward()
    assert torch.equal(grads["fused"], grads["plain"]) and torch.equal(x_fused.grad, x_plain.grad)


def test_global_module_hook_makes_every_block_run_its_modules(gen):
    block, fused = _pair(SMALL, gen)
    names = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, inp, out: names.append(type(m).__name__))
    try:
        x = random_input(SHAPE, gen).float()
        with torch.no_grad(), pytest.warns(FusedFallbackWarning, match="global forward hook"):
            out = fused(x)
        fused_names, names[:] = list(names), []
        with torch.no_grad():
            assert torch.equal(out, block(x))
    finally:
        handle.remove()
    # the same modules ran, the original block included; then the FusedInception's own call
    assert fused_names == names + ["FusedInception"] and len(names) > 10


def test_hook_on_the_original_block_is_reported_at_fuse_time_and_fires(gen):
    block = random_block(SMALL, gen).float().eval()
    seen = []
    block.register_forward_pre_hook(lambda m, args: (args[0].flip(-1),))
    block.register_forward_hook(lambda m, inp, out: seen.append(type(m).__name__))
    model = nn.Sequential(nn.Identity(), block)
    fused, report = fi.fuse_with_report(model)
    assert report.swapped == [("1", "Inception")]
    assert len(report.hooked) == 1 and report.hooked[0][0] == "1"
    hooks = report.hooked[0][1]
    assert [h.split()[0:2] for h in hooks] == [["forward", "pre-hook"], ["forward", "hook"]]
    assert all(h.endswith("on the block itself") for h in hooks)
    assert "hooks on 1 (forward pre-hook" in str(report)
    x = random_input(SHAPE, gen).float()
    with torch.no_grad(), pytest.warns(FusedFallbackWarning, match="the block itself"):
        assert torch.equal(fused(x), block(x))
    # once for the fused model's call, once for the plain one (fuse's tracing ran none)
    assert seen == ["Inception", "Inception"]
    assert fi.fuse_with_report(nn.Sequential(random_block(SMALL, gen)))[1].hooked == []


def test_prune_is_honoured_and_sees_in_place_updates(gen, exit_stack, triton_tactic):
    """prune keeps the nn.Conv2d class and recomputes ``weight`` in a forward pre-hook: after an
    in-place update of ``weight_orig`` the fused block must not read a stale ``weight``."""
    block, fused = _pair(SMALL, gen)
    for module in (block, fused):
        prune.l1_unstructured(module.branch2[1].conv, "weight", amount=0.5)
    x = random_input(SHAPE, gen).float()
    with torch.no_grad():
        with pytest.warns(FusedFallbackWarning, match="L1Unstructured"):
            assert torch.equal(fused(x), block(x))
        for module in (block, fused):
            module.branch2[1].conv.weight_orig.mul_(-3)
        with pytest.warns(FusedFallbackWarning):
            assert torch.equal(fused(x), block(x))
        for module in (block, fused):
            prune.remove(module.branch2[1].conv, "weight")
        calls = exit_stack.enter_context(record_paths())
        out = _no_fallback(lambda: fused(x))
    assert calls == [("fused", torch.float32)]
    assert_close(out, copy.deepcopy(block).double()(x.double()), "float32", "fused after prune.remove")


def test_hook_based_weight_norm_is_honoured(gen):
    block, fused = _pair(SMALL_NO_BN, gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the hook-based API is deprecated, still used
        for module in (block, fused):
            nn.utils.weight_norm(module.branch4[1].conv)
    x = random_input(SHAPE, gen).float()
    with torch.no_grad(), pytest.warns(FusedFallbackWarning, match="WeightNorm"):
        assert torch.equal(fused(x), block(x))


@pytest.mark.parametrize("when", ["before-fuse", "after-fuse"])
def test_parametrized_weight_norm_is_read_through_the_parametrization(when, gen, exit_stack, triton_tactic):
    """parametrizations.weight_norm: the fused path, output and gradients of the originals."""
    block = random_block(SMALL, gen).float().train()
    if when == "before-fuse":
        parametrizations.weight_norm(block.branch2[0].conv)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    if when == "after-fuse":
        for module in (block, fused):
            parametrizations.weight_norm(module.branch2[0].conv)
    for module in (block, fused):
        for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.eval()  # the folded path (with BN in training the batch-statistics op reads them too)
    ref = copy.deepcopy(block).double()
    calls = exit_stack.enter_context(record_paths())
    x = random_input(SHAPE, gen)
    out = _no_fallback(lambda: fused(x.float()))
    expected = ref(x)
    assert_close(out, expected, "float32", "output")
    grad = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    out.backward(grad.float())
    expected.backward(grad)
    originals = dict(ref.branch2[0].conv.parametrizations.weight.named_parameters())
    for name, p in fused.branch2[0].conv.parametrizations.weight.named_parameters():
        assert_close(p.grad, originals[name].grad, "float32", f"grad {name}")
    with torch.no_grad():  # no cache under a parametrization: a change of an original shows at once
        for module in (ref, fused):
            module.branch2[0].conv.parametrizations.weight.original0.mul_(2)
        assert_close(fused(x.float()), ref(x), "float32", "after changing original0")
    assert calls == [("fused", torch.float32)] * 2


@pytest.mark.parametrize("bn_training", [False, True], ids=["folded", "batch-stats"])
def test_spectral_norm_power_iteration_runs_once_per_call(bn_training, gen):
    """parametrizations.spectral_norm in training updates its vectors on every read of ``weight``:
    the fused block must read it exactly as often as the plain block (once per call)."""
    block = random_block(SMALL, gen).float().train()
    for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.train(bn_training)
    parametrizations.spectral_norm(block.branch3[1].conv)  # random vectors: copied, not drawn twice
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    for call in range(2):
        x = random_input(SHAPE, gen).float()
        out = _no_fallback(lambda: fused(x))
        expected = block(x)
        assert_close(out, expected.double(), "float32", f"output, call {call}")
    plain_sn = dict(block.branch3[1].conv.parametrizations.weight.named_buffers())
    for name, buffer in fused.branch3[1].conv.parametrizations.weight.named_buffers():
        assert torch.equal(buffer, plain_sn[name]), name


def _freeze_bns(block: nn.Module, units) -> nn.Module:
    """Replace the BN of the given units of a reference Inception with FrozenBatchNorm2d holding
    the same statistics and affine parameters."""
    ops = pytest.importorskip("torchvision.ops")
    for unit in units:
        bn = unit.bn
        frozen = ops.FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(frozen, name).copy_(getattr(bn, name).detach())
        unit.bn = frozen
    return block


@pytest.mark.parametrize("others", ["none", "bn-eval", "bn-train"])
def test_frozen_batch_norm_is_folded(others, gen):
    """FrozenBatchNorm2d on three units (its fixed statistics whatever its flag); the other three
    keep their nn.BatchNorm2d, in eval or in training ('none': all six frozen). Output, gradients,
    and the frozen units' buffers (all buffers unless a BN trains) unchanged."""
    block = random_block(WIDE, gen).float().train(others == "bn-train")
    units = [block.branch1, block.branch2[1], block.branch4[1]]
    if others == "none":
        units += [block.branch2[0], block.branch3[0], block.branch3[1]]
    _freeze_bns(block, units)
    fused, report = fi.fuse_with_report(copy.deepcopy(block))
    assert isinstance(fused, fi.FusedInception) and report.swapped == [("", "Inception")], report
    ref, plain = copy.deepcopy(block).double(), copy.deepcopy(block)
    before = {name: b.clone() for name, b in fused.named_buffers()}
    x = random_input(SHAPE, gen)
    out = fused(x.float().requires_grad_())
    expected = ref(x.clone().requires_grad_())
    assert_close(out, expected, "float32", "output")
    grad = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    out.backward(grad.float())
    expected.backward(grad)
    plain(x.float().requires_grad_()).backward(grad.float())
    # gradients through a training BN's backward lose digits to cancellation in any float32
    # block: held to the plain block's own error there (see tests/test_modes.py)
    ref_params, plain_params = dict(ref.named_parameters()), dict(plain.named_parameters())
    for name, p in fused.named_parameters():
        assert_close_to_baseline(p.grad, ref_params[name].grad, plain_params[name].grad, "float32", f"grad {name}")
    frozen_buffers = {name for name, m in block.named_modules() if type(m).__name__ == "FrozenBatchNorm2d"}
    for name, b in fused.named_buffers():
        if name.rsplit(".", 1)[0] in frozen_buffers or others != "bn-train":
            assert torch.equal(b, before[name]), name
