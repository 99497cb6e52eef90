"""The aten-bn tactic (fused_inception.aten_bn_forward) against the float64 reference block.

Each case runs one or two forward/backward steps of ``aten_bn_forward`` on a float32 copy of a
random block (nonzero BN statistics, gamma of either sign, signed input) and of the unfused block
itself in float32 and float64: the output is held to float32's tolerance, the input and every
parameter gradient to the larger of that and BASELINE_FACTOR x the unfused float32 block's own
error, and every buffer (running statistics, num_batches_tracked) to the float64 block's. The
BatchNorm cases cover the merged call (the three input BNs as one batch_norm) and each reason it
splits per unit: a different eps, momentum, mode, or affine. NaN/Inf inputs give the reference's
NaN/+Inf/-Inf positions.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import fused_inception as fi
from block_helpers import SMALL_NO_BN, WIDE, assert_buffers_match, random_input
from fused_inception.aten_bn_forward import aten_bn_forward
from fused_inception.folding import units_of_reference_block
from fused_inception.models.randomize import random_block
from fused_inception.selection import force_tactic
from fused_inception.tolerances import assert_close, assert_close_to_baseline, assert_same_nonfinite

SHAPE = (3, 8, 5, 6)
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _run(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return aten_bn_forward(x, units_of_reference_block(block), block.spec.relu, ("branch1", "conv3", "conv5", "pool_proj"))


def _bns(block: nn.Module) -> dict[str, nn.Module]:
    return {name: bn for name, (_, bn) in units_of_reference_block(block).items()}


def _check_steps(block: nn.Module, gen: torch.Generator, fmt: str = "nchw", steps: int = 2) -> None:
    """``steps`` forward/backward steps of the aten-bn tactic on a float32 copy of ``block``
    against the float64 block, the unfused float32 block as the gradients' baseline."""
    fused, plain, ref = copy.deepcopy(block).float(), copy.deepcopy(block).float(), copy.deepcopy(block).double()
    for step in range(steps):
        x64 = random_input(SHAPE, gen)
        x = {name: x64.to(dtype).contiguous(memory_format=FORMATS[fmt]).requires_grad_()
             for name, dtype in (("fused", torch.float32), ("plain", torch.float32), ("ref", torch.float64))}
        outs = {"fused": _run(fused, x["fused"]), "plain": plain(x["plain"]), "ref": ref(x["ref"])}
        assert outs["fused"].is_contiguous(memory_format=FORMATS[fmt])
        grad_out = torch.randn(outs["ref"].shape, generator=gen, dtype=torch.float64)
        for name, out in outs.items():
            out.backward(grad_out.to(out.dtype))
        what = f"step {step}, {fmt}"
        assert_close(outs["fused"], outs["ref"], "float32", f"output, {what}")
        assert_close_to_baseline(x["fused"].grad, x["ref"].grad, x["plain"].grad, "float32", f"grad x, {what}")
        assert_buffers_match(fused, ref, what)
    ref_params, plain_params = dict(ref.named_parameters()), dict(plain.named_parameters())
    for name, p in fused.named_parameters():
        assert_close_to_baseline(p.grad, ref_params[name].grad, plain_params[name].grad, "float32", f"grad {name}")


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "frozen-bn"])
def test_parity(training, fmt, gen):
    """Every BN alike: the three input BNs run as one batch_norm."""
    block = random_block(WIDE, gen).train(training)
    before = {name: b.clone() for name, b in block.named_buffers()}
    _check_steps(block, gen, fmt)
    if not training:  # the steps ran on copies: the original's buffers must equal its copies' start
        assert all(torch.equal(b, before[name]) for name, b in block.named_buffers())


def test_frozen_bn_leaves_buffers_alone(gen):
    block = random_block(WIDE, gen).float().eval()
    before = {name: b.clone() for name, b in block.named_buffers()}
    _run(block, random_input(SHAPE, gen).float().requires_grad_()).sum().backward()
    assert all(torch.equal(b, before[name]) for name, b in block.named_buffers())


def test_momentum_none_is_the_cumulative_average(gen):
    block = random_block(WIDE, gen).train()
    for bn in _bns(block).values():
        bn.momentum = None
    _check_steps(block, gen, steps=3)


@pytest.mark.parametrize("change", ["eps", "momentum", "eval", "no-affine", "no-tracking"])
def test_input_bns_that_differ_run_one_by_one(change, gen):
    """One of the three input BNs (reduce5's) differs: the merged call splits per unit, and each
    unit still normalises and moves its buffers as its own BN does."""
    block = random_block(WIDE, gen).train()
    bn = _bns(block)["reduce5"]
    if change == "eps":
        bn.eps = 1e-2
    elif change == "momentum":
        bn.momentum = 0.5
    elif change == "eval":
        bn.eval()
    elif change == "no-affine":
        bn.weight, bn.bias, bn.affine = None, None, False
    else:  # batch statistics, buffers kept but not moved (nn.BatchNorm2d's rule)
        bn.track_running_stats = False
    _check_steps(block, gen)


def test_frozen_batch_norm_2d(gen):
    """torchvision's FrozenBatchNorm2d on every conv: running statistics, no parameters."""
    torchvision_ops = pytest.importorskip("torchvision.ops")
    block = random_block(WIDE, gen)
    for seq, i in ((block.branch1, None), (block.branch2, 0), (block.branch2, 1), (block.branch3, 0),
                   (block.branch3, 1), (block.branch4, 1)):
        unit = seq if i is None else seq[i]
        frozen = torchvision_ops.FrozenBatchNorm2d(unit.bn.num_features, eps=unit.bn.eps)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, name).copy_(getattr(unit.bn, name))
        unit.bn = frozen
    _check_steps(block.train(), gen)


def test_without_batch_norm(gen):
    """The paper's block: conv biases, no BN."""
    _check_steps(random_block(SMALL_NO_BN, gen).train(), gen)


def test_some_units_without_batch_norm_are_refused(gen):
    block = random_block(WIDE, gen)
    block.branch3[0].bn = None
    with pytest.raises(ValueError, match="all six convs or on none"):
        _run(block.float(), random_input(SHAPE, gen).float())


@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "frozen-bn"])
def test_nonfinite_inputs(training, gen):
    """NaN and +-Inf at an interior pixel, a corner and an edge: the reference's pattern (with batch
    statistics a NaN spreads through its channels' means, as in the unfused block)."""
    block = random_block(WIDE, gen).train(training)
    x = random_input(SHAPE, gen)
    x[0, 2, 2, 3], x[1, 0, 0, 0], x[2, 5, 4, 2] = math.nan, math.inf, -math.inf
    ref = copy.deepcopy(block).double()(x)
    assert not bool(torch.isfinite(ref).all())
    out = _run(copy.deepcopy(block).float(), x.float())
    assert_same_nonfinite(out, ref, "float32", "output")


class _CountingIdentity(nn.Module):
    """A parametrization that counts how often the weight it guards is computed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return weight


@pytest.mark.parametrize("where", ["branch1", "conv3"], ids=["merged-input-bn", "own-bn"])
def test_parametrized_weights_are_computed_once_per_call(where, gen):
    """A parametrized conv weight and BN gamma each compute once per call, as in the block's own
    forward (a stateful parametrization must not advance twice), and the result still matches."""
    block = random_block(WIDE, gen).float().train()
    conv, bn = units_of_reference_block(block)[where]
    counters = [_CountingIdentity(), _CountingIdentity()]
    torch.nn.utils.parametrize.register_parametrization(conv, "weight", counters[0])
    torch.nn.utils.parametrize.register_parametrization(bn, "weight", counters[1])
    for counter in counters:  # registering evaluates the parametrization once
        counter.calls = 0
    _run(block, random_input(SHAPE, gen).float()).sum().backward()
    assert [c.calls for c in counters] == [1, 1]
    _check_steps(block, gen)


def test_fused_module_compiles_with_aten_bn_in_one_graph(gen):
    """torch.compile(fullgraph=True) of a FusedInception in BN training on the aten-bn tactic:
    traced without a graph break, and the compiled step matches the plain block, running
    statistics and num_batches_tracked included."""
    block = random_block(WIDE, gen).float().train()
    fused, ref = fi.FusedInception.from_module(copy.deepcopy(block)), copy.deepcopy(block).double()
    torch._dynamo.reset()
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")
    x = random_input(SHAPE, gen)
    with force_tactic("aten-bn"):
        out = compiled(x.float())
    assert_close(out, ref(x), "float32", "compiled output")
    assert_buffers_match(fused, ref, "compiled step")
