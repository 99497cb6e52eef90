"""Every mode exact: each BatchNorm's own ``training`` flag decides its conv unit, as in
nn.BatchNorm2d (frozen-BN fine-tuning, a BN child training inside an eval block, momentum=None,
track_running_stats switched off after fusing), with no buffer change a plain model would not make.
Outputs and gradients against float64 copies; running statistics too (Triton interpreter on the CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fused_inception as fi
from block_helpers import WIDE, assert_step_matches, random_input
from fused_inception.folding import UNIT_NAMES
from fused_inception.models import googlenet, randomize_
from fused_inception.models.randomize import random_block
from fused_inception.module import PATHS
from fused_inception.selection import force_tactic
from fused_inception.tactics import TRITON
from fused_inception.tolerances import assert_close_to_baseline
from network_helpers import FLOAT64_REL, assert_float64_gradients, assert_gradients_present, assert_within

SHAPE = (3, 8, 4, 5)


def _bns(module: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _unit_bn(fused: fi.FusedInception, unit: str) -> str:
    """The qualified name of the BN of ``unit`` (the same name in the plain block)."""
    return fused.match.units[unit].bn


def _step_and_compare(block: nn.Module, fused: fi.FusedInception, gen: torch.Generator, steps: int = 2) -> None:
    """``steps`` forward/backward steps of the float32 fused block, a float64 copy of the plain
    one and the float32 plain block itself: outputs, input gradients, parameter gradients and
    every buffer after each step, against float64.

    Outputs and buffers are held to the float32 tolerance. Gradients are held to the larger of it
    and the plain float32 block's own error (parity.BASELINE_FACTOR): with a BN in training
    downstream of another unit, the gradient reaching that unit passes through the batch-statistics
    backward, which subtracts per-channel means of products and cancels digits over a batch of a
    few pixels; the plain block in float32 loses the same digits (seen on a frozen reduce5 BN's
    weight gradient below a training conv5 BN: rel 1.6e-5 fused, 8.7e-6 plain, same draw)."""
    ref = copy.deepcopy(block).double()
    plain = copy.deepcopy(block)
    for step in range(steps):
        x = random_input(SHAPE, gen)
        grad_out = torch.randn((SHAPE[0], WIDE.out_channels, *SHAPE[2:]), generator=gen, dtype=torch.float64)
        inputs = {"fused": x.float().requires_grad_(), "plain": x.float().requires_grad_(),
                  "ref": x.clone().requires_grad_()}
        outs = {}
        for name, net in (("fused", fused), ("plain", plain), ("ref", ref)):
            outs[name] = net(inputs[name])
            outs[name].backward(grad_out.to(outs[name].dtype))
        assert_step_matches(fused, ref, inputs, outs, f"step {step}")
    ref_params, plain_params = dict(ref.named_parameters()), dict(plain.named_parameters())
    for name, p in fused.named_parameters():
        assert_close_to_baseline(p.grad, ref_params[name].grad, plain_params[name].grad, "float32", f"grad {name}")


def _counts(calls: list[tuple[str, torch.dtype]]) -> dict[str, int]:
    """{path: number of calls} over every path of fused_inception.module.PATHS."""
    return {path: sum(1 for p, _ in calls if p == path) for path in PATHS}


def test_frozen_bn_fine_tuning_block_folds_and_leaves_buffers_alone(gen, fused_paths, triton_tactic):
    """model.train(), every BN .eval(): the fused (folded) op with autograd, no buffer changes."""
    block = random_block(WIDE, gen).float().train()
    for bn in _bns(block).values():
        bn.eval()
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    before = {name: b.clone() for name, b in fused.named_buffers()}
    _step_and_compare(block, fused, gen)
    assert _counts(fused_paths) == {"fused": 2, "aten": 0, "aten_bn": 0, "bn_train": 0, "modules": 0}  # the folded op, with autograd
    for name, b in fused.named_buffers():
        assert torch.equal(b, before[name]), name


@pytest.mark.parametrize("unit", UNIT_NAMES)
@pytest.mark.parametrize("mix", ["one-bn-training-in-eval-block", "one-bn-frozen-in-training-block"])
def test_mixed_bn_modes_per_unit(mix, unit, gen, fused_paths, triton_tactic):
    """One BN in the other mode than the rest, for each of the six units: each unit follows its BN,
    inside the BN-training op."""
    block = random_block(WIDE, gen).float()
    training = mix == "one-bn-frozen-in-training-block"
    block.train(training)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    name = _unit_bn(fused, unit)
    block.get_submodule(name).train(not training)
    fused.get_submodule(name).train(not training)
    _step_and_compare(block, fused, gen)
    assert _counts(fused_paths) == {"fused": 0, "aten": 0, "aten_bn": 0, "bn_train": 2, "modules": 0}


@pytest.mark.parametrize("momentum", [None, 0.3], ids=["cumulative", "momentum-0.3"])
def test_momentum_in_mixed_modes(momentum, gen, fused_paths, triton_tactic):
    """momentum=None (cumulative average over num_batches_tracked) and a set momentum, with two
    BNs frozen: only the training BNs move, each by its own factor."""
    block = random_block(WIDE, gen).float().train()
    for i, bn in enumerate(_bns(block).values()):
        bn.momentum = momentum if i % 2 else 0.1
        bn.num_batches_tracked.fill_(i)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    for unit in ("reduce3", "pool_proj"):
        block.get_submodule(_unit_bn(fused, unit)).eval()
        fused.get_submodule(_unit_bn(fused, unit)).eval()
    _step_and_compare(block, fused, gen, steps=3)
    assert _counts(fused_paths) == {"fused": 0, "aten": 0, "aten_bn": 0, "bn_train": 3, "modules": 0}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_track_running_stats_switched_off_after_fusing(training, gen, fused_paths, triton_tactic):
    """As nn.BatchNorm2d: in training, batch statistics with the buffers left alone; in eval, the
    running statistics (the buffers still exist)."""
    block = random_block(WIDE, gen).float().train(training)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    for module in (block, fused):
        module.get_submodule(_unit_bn(fused, "conv5")).track_running_stats = False
    before = {name: b.clone() for name, b in fused.named_buffers()}
    _step_and_compare(block, fused, gen)
    # training: batch statistics, in the BN-training op; eval: the running statistics, folded
    assert _counts(fused_paths) == ({"fused": 0, "aten": 0, "aten_bn": 0, "bn_train": 2, "modules": 0} if training else
                     {"fused": 2, "aten": 0, "aten_bn": 0, "bn_train": 0, "modules": 0})
    bn = _unit_bn(fused, "conv5")
    for buffer in ("running_mean", "running_var", "num_batches_tracked"):
        key = f"{bn}.{buffer}"
        assert torch.equal(dict(fused.named_buffers())[key], before[key]), key


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_running_statistics_removed_after_fusing_runs_the_modules(training, gen, fused_paths):
    """A BN whose running statistics are set to None normalises with batch statistics in every
    mode: the block's own modules run it."""
    block = random_block(WIDE, gen).float().train(training)
    fused = fi.FusedInception.from_module(copy.deepcopy(block))
    for module in (block, fused):
        bn = module.get_submodule(_unit_bn(fused, "branch1"))
        bn.running_mean = bn.running_var = bn.num_batches_tracked = None
    _step_and_compare(block, fused, gen)
    assert _counts(fused_paths) == {"fused": 0, "aten": 0, "aten_bn": 0, "bn_train": 0, "modules": 2}


def test_block_train_flag_alone_does_not_decide(gen):
    """A training block counts a batch in num_batches_tracked while its BNs train, and not once
    they are all frozen."""
    block = random_block(WIDE, gen).float().train()
    fused = fi.FusedInception.from_module(block)
    x = random_input(SHAPE, gen).float()
    counts = lambda: [int(bn.num_batches_tracked) for bn in _bns(fused).values()]  # noqa: E731
    start = counts()
    fused(x)
    assert counts() == [c + 1 for c in start]
    for bn in _bns(fused).values():
        bn.eval()
    fused(x)
    assert counts() == [c + 1 for c in start]


def test_frozen_bn_fine_tuning_of_a_whole_googlenet(gen, monkeypatch, fused_paths):
    """The usual fine-tuning recipe on a torchvision-variant GoogLeNet: model.train(), then every
    BN .eval(). The fused network in float64 against the plain one in float64: logits (with aux
    heads) and every parameter gradient (network_helpers.FLOAT64_REL). The fused network in
    float32: logits against float64, held to the unfused fp32 network's own error
    (parity.BASELINE_FACTOR), every gradient present and finite (why not their values:
    tests/network_helpers.py). Buffers unchanged in both; the nine blocks take the fused op.

    What this adds to the block-level tests above (which run the kernels in these modes) is the
    network: modes, dispatch, buffers and gradients through nine blocks and the aux heads. The
    tensors are on the CPU, where the fused op computes on its PyTorch path (with the interpreter
    it would take about 4 minutes on 2 cores for nine blocks)."""
    model = randomize_(googlenet(variant="torchvision", aux_logits=True, num_classes=10, init_weights=False),
                       gen).train()
    for bn in _bns(model).values():
        bn.eval()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ref = copy.deepcopy(model).double()
    fused64, fused = fi.fuse(ref), fi.fuse(model)
    assert sum(isinstance(m, fi.FusedInception) for m in fused.modules()) == 9
    before = {name: b.clone() for name, b in fused.named_buffers()}
    before64 = {name: b.clone() for name, b in fused64.named_buffers()}
    x = random_input((1, 3, 64, 64), gen)
    weights = [torch.randn(10, generator=gen, dtype=torch.float64) for _ in range(3)]
    outputs = {}
    # the fused op on every device (the CPU's default tactic for this mode is the modules, and a
    # GPU's tuned file may pick another): this test is about the op through a whole network
    with force_tactic(TRITON):
        for name, net, inp in (("ref", ref, x), ("fused64", fused64, x), ("unfused", model, x.float()),
                               ("fused", fused, x.float())):
            torch.manual_seed(1)  # the same dropout masks in the four networks
            logits = net(inp)
            outputs[name] = logits
            sum((out.double() * w).sum() for out, w in zip(logits, weights)).backward()
    assert fused_paths == [("fused", torch.float64)] * 9 + [("fused", torch.float32)] * 9
    for i, what in enumerate(("logits", "aux2", "aux1")):
        assert_within(outputs["fused64"][i], outputs["ref"][i], FLOAT64_REL, f"float64 {what}")
        assert_close_to_baseline(outputs["fused"][i], outputs["ref"][i], outputs["unfused"][i], "float32", what)
    assert_float64_gradients(fused64, ref)
    assert_gradients_present(fused)
    for net, buffers in ((fused64, before64), (fused, before)):
        for name, b in net.named_buffers():
            assert torch.equal(b, buffers[name]), name
