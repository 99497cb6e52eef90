"""fuse and unfuse on whole networks: dispatch and unfuse, eval logits, a training step with aux
heads, torchvision checkpoints (Triton interpreter on the CPU). What fuse refuses and
fuse_with_report's reasons: tests/test_matching.py and tests/test_hooks.py."""

from __future__ import annotations

import copy

import pytest
import torch

import fused_inception as fi
from block_helpers import CUDA, random_input
from fused_inception.models import GoogLeNetLoss, googlenet, randomize_
from fused_inception.module import record_paths
from fused_inception.selection import force_tactic
from fused_inception.tactics import TRITON
from fused_inception.tolerances import assert_close, assert_close_to_baseline
from network_helpers import FLOAT64_REL, assert_float64_gradients, assert_gradients_present, assert_within


def _network(variant: str, gen: torch.Generator) -> torch.nn.Module:
    return randomize_(googlenet(variant=variant, aux_logits=True, num_classes=10, init_weights=False), gen)


def test_fuse_eval_model_dispatches_to_the_fused_op_and_unfuse_restores_it(gen, monkeypatch):
    """fuse() of an eval model: eval blocks, each call through the fused op (on the CPU on its
    PyTorch path: this test is about dispatch and unfuse; the kernels' whole-network parity is
    test_fused_network_eval_logits); unfuse: the same outputs."""
    model = _network("torchvision", gen).eval()
    if not CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
    fused = fi.fuse(model)
    x = random_input((1, 3, 32, 32), gen).float()
    # the fused op on every device (the CPU's default tactic here is aten, and a GPU's tuned file
    # may pick another: tests/test_tactic_dispatch.py runs the defaults)
    with torch.no_grad(), record_paths() as calls, force_tactic(TRITON):
        out = fused(x)
    assert calls == [("fused", torch.float32)] * 9
    with torch.no_grad():
        plain = fi.unfuse(fused)
        assert not any(m.training for m in plain.modules())
        assert torch.equal(plain(x), model(x))
        assert_close_to_baseline(out, copy.deepcopy(model).double()(x.double()), model(x), "float32", "fused logits")


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_fused_network_eval_logits(variant, gen):
    """Whole networks are held to the unfused network's own fp32 error (parity.BASELINE_FACTOR)."""
    model = _network(variant, gen).eval()
    fused = fi.fuse(model)
    assert sum(isinstance(m, fi.FusedInception) for m in fused.modules()) == 9
    x = random_input((2, 3, 64, 64), gen)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x)
        baseline = model(x.float())
        out = fused(x.float())
    assert_close_to_baseline(out, ref, baseline, "float32", f"{variant} eval logits")


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_fused_network_training_step(variant, gen, monkeypatch, fused_paths, triton_tactic):
    """One training step with aux heads and GoogLeNetLoss: every gradient, the loss, the logits
    and the BN buffers of the fused network in float64 against the plain network in float64; the
    loss, logits and BN buffers of the fused fp32 network against float64, held to the unfused fp32
    network's own error (parity.BASELINE_FACTOR). Why in two parts: tests/network_helpers.py."""
    model = _network(variant, gen).train()
    ref = copy.deepcopy(model).double()
    fused64, fused = fi.fuse(ref), fi.fuse(model)
    x = random_input((2, 3, 96, 96), gen)
    target = torch.randint(0, 10, (2,), generator=gen)
    loss_fn = GoogLeNetLoss(aux_weight=0.3)
    calls = fused_paths  # (path, compute dtype) of each fused block's call: none may fall back to its modules

    def step(net, inp):
        torch.manual_seed(1)  # same dropout masks
        outputs = net(inp)
        loss = loss_fn(outputs, target)
        loss.backward()
        return loss, outputs

    expected_path = "fused" if variant == "paper" else "bn_train"  # paper: no BN
    (ref_loss, ref_out) = step(ref, x)
    # float64 takes the op's PyTorch path (CPU), forced: the CPU's default tactic in these modes is
    # the modules
    with monkeypatch.context() as m, force_tactic(TRITON):
        m.setenv("TRITON_INTERPRET", "0")
        loss64, out64 = step(fused64, x)
    assert calls == [(expected_path, torch.float64)] * 9
    assert_within(loss64, ref_loss, FLOAT64_REL, "float64 loss")
    for i, (a, b) in enumerate(zip(out64, ref_out)):
        assert_within(a, b, FLOAT64_REL, f"float64 logits {i}")
    assert_float64_gradients(fused64, ref)
    ref_buffers = dict(ref.named_buffers())
    for name, b in fused64.named_buffers():
        if b.is_floating_point():
            assert_within(b, ref_buffers[name], FLOAT64_REL, f"float64 buffer {name}")
        else:
            assert torch.equal(b, ref_buffers[name]), name

    calls.clear()
    (loss, out), (unfused_loss, unfused_out) = step(fused, x.float()), step(model, x.float())
    assert calls == [(expected_path, torch.float32)] * 9
    assert_close_to_baseline(loss, ref_loss, unfused_loss, "float32", "loss")
    for i, (a, b, c) in enumerate(zip(out, ref_out, unfused_out)):
        assert_close_to_baseline(a, b, c, "float32", f"logits {i}")
    assert_gradients_present(fused)  # ran in fp32; values checked in float64 above
    unfused_buffers = dict(model.named_buffers())
    for name, b in fused.named_buffers():
        if b.is_floating_point():
            assert_close_to_baseline(b, ref_buffers[name], unfused_buffers[name], "float32", f"buffer {name}")
        else:
            assert torch.equal(b, ref_buffers[name]), name


def test_torchvision_checkpoint_loads_into_fused_model(gen):
    tv = pytest.importorskip("torchvision")
    reference = randomize_(tv.models.googlenet(weights=None, aux_logits=False, init_weights=True), gen).eval()
    fused = fi.fuse(googlenet(variant="torchvision", aux_logits=False)).eval()
    fused.load_state_dict(reference.state_dict(), strict=True)
    x = random_input((1, 3, 48, 48), gen).float()
    with torch.no_grad():
        assert_close(fused(x), copy.deepcopy(reference).double()(x.double()), "float32", "torchvision weights")
