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
from fused_inception.tolerances import assert_close, assert_close_to_baseline, compare


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


# A training step's gradients are discontinuous wherever a ReLU pre-activation or a max-pool
# near-tie sits within rounding of zero, and a whole network on random draws has such units: about
# 2 draws in 10, a second fp32 run of the *unfused* network that only rounds differently (oneDNN
# convolutions off) already fails "BASELINE_FACTOR x the unfused error" (one case: a ReLU whose
# float64 pre-activation is -2.25e-6 at a scale of 6.5 flips and routes a gradient elsewhere). No
# rounding-based tolerance covers a flip, so the step is checked in two parts, on any draw:
# * float64: the fused network against the plain one, both float64, where no unit sits within
#   rounding: the whole plumbing (both fused ops, their backward, dispatch per BN mode, running
#   statistics) must agree to float64 rounding, FLOAT64_REL. Exception: a fused block's own
#   parameter gradients, which the inception_block op's path rounds to float32 once (the weights
#   folding.fold_conv_unit returns, the bias gradients of backward.conv_grads), so are within one
#   float32 rounding, 2**-24 relative. The Triton kernels do not take float64: this part runs the
#   op's PyTorch path.
# * float32 (the paper network's blocks run the Triton kernels): the loss, the logits and the
#   running statistics, which are continuous in the inputs and do not jump when a ReLU flips,
#   against the unfused network's own fp32 error.
# The fp32 gradients are checked at block level (above, and tests/test_properties.py).
# FLOAT64_REL: 6e-15 at most on the draws measured; the margin is for float64 rounding amplified
# through depth and BN over few samples, and it stays far below the 6e-8 of a stray float32 rounding.
FLOAT64_REL = 1e-10
FP32_ROUNDING = 2.0**-24


def _within(out: torch.Tensor, ref: torch.Tensor, tolerance: float, what: str) -> None:
    """Relative error of ``out`` against the float64 ``ref`` within ``tolerance``."""
    rel = compare(out, ref, "float32").rel_error  # the key only names a tolerance, unused here
    assert rel <= tolerance, f"{what}: rel {rel:.3e} (tol {tolerance:.1e})"


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_fused_network_training_step(variant, gen, monkeypatch, fused_paths, triton_tactic):
    """One training step with aux heads and GoogLeNetLoss: every gradient, the loss, the logits
    and the BN buffers of the fused network in float64 against the plain network in float64; the
    loss, logits and BN buffers of the fused fp32 network against float64, held to the unfused fp32
    network's own error (parity.BASELINE_FACTOR). See the comment above for why."""
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
    _within(loss64, ref_loss, FLOAT64_REL, "float64 loss")
    for i, (a, b) in enumerate(zip(out64, ref_out)):
        _within(a, b, FLOAT64_REL, f"float64 logits {i}")
    ref_params, ref_buffers = dict(ref.named_parameters()), dict(ref.named_buffers())
    fused_blocks = [name for name, m in fused64.named_modules() if isinstance(m, fi.FusedInception)]
    for name, p in fused64.named_parameters():
        assert p.grad is not None, name
        in_block = any(name.startswith(block + ".") for block in fused_blocks)
        _within(p.grad, ref_params[name].grad, FLOAT64_REL + (FP32_ROUNDING if in_block else 0.0),
                f"float64 grad {name}")
    for name, b in fused64.named_buffers():
        if b.is_floating_point():
            _within(b, ref_buffers[name], FLOAT64_REL, f"float64 buffer {name}")
        else:
            assert torch.equal(b, ref_buffers[name]), name

    calls.clear()
    (loss, out), (unfused_loss, unfused_out) = step(fused, x.float()), step(model, x.float())
    assert calls == [(expected_path, torch.float32)] * 9
    assert_close_to_baseline(loss, ref_loss, unfused_loss, "float32", "loss")
    for i, (a, b, c) in enumerate(zip(out, ref_out, unfused_out)):
        assert_close_to_baseline(a, b, c, "float32", f"logits {i}")
    for name, p in fused.named_parameters():  # ran in fp32; values checked in float64 above
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
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
