"""Finding Inception blocks by dataflow (matching.py) and swapping them in and out (patching.py).

Structure only, on the CPU; the fused block's numerics are tested elsewhere, except one tiny
end-to-end check that a swapped user block computes what it replaced.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fused_inception import models
from fused_inception.matching import InceptionMatch, NotInception, UnitRef, match_inception
from fused_inception.module import FusedInception
from fused_inception.patching import FuseReport, fuse, fuse_with_report, unfuse
from fused_inception.spec import googlenet_spec

GOOGLENET_BLOCK_NAMES = [f"inception{n}" for n in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
GOOGLENET_ORDER = ("branch1", "conv3", "conv5", "pool_proj")


def googlenet_units(bn: bool) -> dict[str, UnitRef]:
    """The unit names of torchvision's Inception layout (also fused_inception.models.Inception)."""
    names = {"branch1": "branch1", "reduce3": "branch2.0", "conv3": "branch2.1",
             "reduce5": "branch3.0", "conv5": "branch3.1", "pool_proj": "branch4.1"}
    return {k: UnitRef(f"{v}.conv", f"{v}.bn" if bn else None) for k, v in names.items()}


@pytest.fixture(scope="module")
def tv_googlenet() -> nn.Module:
    return torchvision.models.googlenet(weights=None, init_weights=True, aux_logits=True)


# --- user blocks -----------------------------------------------------------------------------

class DictBlock(nn.Module):
    """Functional style: ModuleDicts, F.relu(inplace=True), F.max_pool2d, pool branch first."""

    def __init__(self, cin: int = 8) -> None:
        super().__init__()
        # a: 1x1; b_red -> b: 5x5 (first reduce branch in the cat); c_red -> c: 3x3; d: pool proj
        self.convs = nn.ModuleDict({
            "d": nn.Conv2d(cin, 3, 1, bias=False),
            "b_red": nn.Conv2d(cin, 2, 1, bias=False),
            "b": nn.Conv2d(2, 5, 5, padding=2, bias=False),
            "a": nn.Conv2d(cin, 4, 1, bias=False),
            "c_red": nn.Conv2d(cin, 3, 1),
            "c": nn.Conv2d(3, 6, 3, padding="same"),
        })
        self.norms = nn.ModuleDict({key: nn.BatchNorm2d(conv.out_channels, affine=key != "a")
                                    for key, conv in self.convs.items()})

    def unit(self, key: str, t: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norms[key](self.convs[key](t)), inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.unit("d", F.max_pool2d(x, 3, stride=1, padding=1))
        b = self.unit("b", self.unit("b_red", x))
        a = self.unit("a", x)
        c = self.unit("c", self.unit("c_red", x))
        return torch.cat((d, b, a, c), dim=1)


DICT_BLOCK_UNITS = {
    "branch1": UnitRef("convs.a", "norms.a"),
    "reduce3": UnitRef("convs.b_red", "norms.b_red"),
    "conv3": UnitRef("convs.b", "norms.b"),
    "reduce5": UnitRef("convs.c_red", "norms.c_red"),
    "conv5": UnitRef("convs.c", "norms.c"),
    "pool_proj": UnitRef("convs.d", "norms.d"),
}


class SeqBlock(nn.Module):
    """Module style: nn.Sequential branches, conv bias, nn.ReLU modules (or none), no BN."""

    def __init__(self, cin: int = 8, relu: bool = True) -> None:
        super().__init__()

        def act() -> list[nn.Module]:
            return [nn.ReLU(inplace=True)] if relu else []

        self.one = nn.Sequential(nn.Conv2d(cin, 4, 1), *act())
        self.three = nn.Sequential(nn.Conv2d(cin, 3, 1), *act(), nn.Conv2d(3, 5, 3, padding=1), *act())
        self.five = nn.Sequential(nn.Conv2d(cin, 2, 1), *act(), nn.Conv2d(2, 3, 5, padding=2), *act())
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, 3, 1), *act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], 1)


def seq_block_units(relu: bool) -> dict[str, UnitRef]:
    k = 2 if relu else 1  # index of the kxk conv inside its Sequential
    return {"branch1": UnitRef("one.0", None), "reduce3": UnitRef("three.0", None),
            "conv3": UnitRef(f"three.{k}", None), "reduce5": UnitRef("five.0", None),
            "conv5": UnitRef(f"five.{k}", None), "pool_proj": UnitRef("pool.1", None)}


class FlexBlock(nn.Module):
    """A SeqBlock-shaped block whose relu and cat are spelled by the caller."""

    def __init__(self, relu, cat, cin: int = 8) -> None:
        super().__init__()
        self.relu_fn, self.cat_fn = relu, cat
        self.c1 = nn.Conv2d(cin, 4, 1)
        self.r3, self.c3 = nn.Conv2d(cin, 3, 1), nn.Conv2d(3, 5, 3, padding=(1, 1))
        self.r5, self.c5 = nn.Conv2d(cin, 2, 1), nn.Conv2d(2, 3, 7, padding=3)
        self.pp = nn.Conv2d(cin, 3, 1)
        self.pool = nn.MaxPool2d((3, 3), stride=(1, 1), padding=(1, 1), ceil_mode=True)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relu_fn if self.relu_fn is not None else self.act
        return self.cat_fn([r(self.c1(x)), r(self.c3(r(self.r3(x)))), r(self.c5(r(self.r5(x)))),
                            r(self.pp(self.pool(x)))])


FLEX_UNITS = {name: UnitRef(conv, None) for name, conv in
              (("branch1", "c1"), ("reduce3", "r3"), ("conv3", "c3"), ("reduce5", "r5"), ("conv5", "c5"),
               ("pool_proj", "pp"))}


# --- what is matched -------------------------------------------------------------------------

@pytest.mark.parametrize("aux_logits", [True, False])
def test_torchvision_googlenet_blocks_match(aux_logits, tv_googlenet):
    model = tv_googlenet if aux_logits else torchvision.models.googlenet(
        weights=None, init_weights=True, aux_logits=False)
    for name in GOOGLENET_BLOCK_NAMES:
        match = match_inception(getattr(model, name))
        assert match == InceptionMatch(units=googlenet_units(bn=True), relu=True, cat_order=GOOGLENET_ORDER)


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_own_googlenet_blocks_match(variant):
    model = models.googlenet(variant, aux_logits=False)
    for name in GOOGLENET_BLOCK_NAMES:
        match = match_inception(getattr(model, name))
        assert match.units == googlenet_units(bn=variant == "torchvision")
        assert match.relu and match.cat_order == GOOGLENET_ORDER


def test_own_inception_without_relu_matches():
    spec = replace(googlenet_spec("3a", "torchvision"), relu=False)
    match = match_inception(models.Inception(spec))
    assert match == InceptionMatch(units=googlenet_units(bn=True), relu=False, cat_order=GOOGLENET_ORDER)


def test_functional_dict_block_matches():
    match = match_inception(DictBlock())
    assert match.units == DICT_BLOCK_UNITS
    assert match.relu is True
    assert match.cat_order == ("pool_proj", "conv3", "branch1", "conv5")
    units = match.conv_units(DictBlock())
    assert set(units) == set(DICT_BLOCK_UNITS) and isinstance(units["conv3"][0], nn.Conv2d)


@pytest.mark.parametrize("relu", [True, False])
def test_sequential_block_matches(relu):
    match = match_inception(SeqBlock(relu=relu))
    assert match == InceptionMatch(units=seq_block_units(relu), relu=relu, cat_order=GOOGLENET_ORDER)


@pytest.mark.parametrize("relu", [None, F.relu, lambda t: F.relu(t, inplace=True), torch.relu, torch.relu_,
                                  F.relu_, lambda t: t.relu(), lambda t: t.relu_()],
                         ids=["nn.ReLU", "F.relu", "F.relu-inplace", "torch.relu", "torch.relu_", "F.relu_",
                              "x.relu", "x.relu_"])
@pytest.mark.parametrize("cat", [lambda ts: torch.cat(ts, 1), lambda ts: torch.cat(tuple(ts), dim=1),
                                 lambda ts: torch.concat(ts, dim=1)], ids=["cat", "cat-tuple", "concat"])
def test_relu_and_cat_spellings(relu, cat):
    match = match_inception(FlexBlock(relu, cat))
    assert match == InceptionMatch(units=FLEX_UNITS, relu=True, cat_order=GOOGLENET_ORDER)


def test_identity_and_padding_variants_match():
    block = SeqBlock(relu=False)
    block.five = nn.Sequential(block.five[0], nn.Identity(), block.five[1])
    block.one[0] = nn.Conv2d(8, 4, 1, padding="valid")
    assert match_inception(block).units["conv5"] == UnitRef("five.2", None)


# --- what is rejected ------------------------------------------------------------------------

def _reject(block: nn.Module, *words: str) -> str:
    with pytest.raises(NotInception) as info:
        match_inception(block)
    reason = str(info.value)
    for word in words:
        assert word in reason, reason
    return reason


def _seq_with(**changes) -> SeqBlock:
    """A SeqBlock (with ReLU) with some modules replaced: key 'three_2' means block.three[2]."""
    block = SeqBlock()
    for key, module in changes.items():
        attr, index = key.split("_")
        getattr(block, attr)[int(index)] = module
    return block


def test_rejects_stride_2_conv():
    _reject(_seq_with(three_2=nn.Conv2d(3, 5, 3, stride=2, padding=1)), "'three.2'", "stride")


def test_rejects_5x5_maxpool():
    _reject(_seq_with(pool_0=nn.MaxPool2d(5, 1, 2)), "max-pool", "kernel 5")


def test_rejects_functional_maxpool_with_default_stride():
    class Block(SeqBlock):
        def forward(self, x):  # stride defaults to the kernel size, 3
            p = F.max_pool2d(x, 3, padding=1)
            return torch.cat([self.one(x), self.three(x), self.five(x), self.pool[2](self.pool[1](p))], 1)

    _reject(Block(), "max-pool", "stride 3")


def test_rejects_dilation_2():
    _reject(_seq_with(five_2=nn.Conv2d(2, 3, 5, padding=4, dilation=2)), "'five.2'", "dilation")


def test_rejects_grouped_conv():
    _reject(_seq_with(one_0=nn.Conv2d(8, 4, 1, groups=2)), "'one.0'", "grouped")


def test_rejects_wrong_padding():
    _reject(_seq_with(three_2=nn.Conv2d(3, 5, 3, padding=0)), "'three.2'", "padding")


def test_rejects_dropout_in_branch():
    block = SeqBlock()
    block.five = nn.Sequential(*block.five[:2], nn.Dropout(0.1), *block.five[2:])
    _reject(block, "Dropout module 'five.2'")


def test_rejects_arithmetic_in_branch():
    class Block(SeqBlock):
        def forward(self, x):
            return torch.cat([self.one(x) * 2, self.three(x), self.five(x), self.pool(x)], 1)

    _reject(Block(), "branch 1", "operator.mul")


def test_rejects_cat_along_dim_2():
    class Block(SeqBlock):
        def forward(self, x):
            return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], 2)

    _reject(Block(), "dim 2")


def test_rejects_branch_reading_an_attribute():
    class Block(SeqBlock):
        def __init__(self):
            super().__init__()
            self.register_buffer("memory", torch.zeros(1, 8, 5, 5))

        def forward(self, x):
            return torch.cat([self.one(x), self.three(x), self.five(self.memory), self.pool(x)], 1)

    _reject(Block(), "branch 3", "'five.0'", "attribute 'memory'", "not the block input")


def test_rejects_branch_reading_another_branch():
    class Block(SeqBlock):
        def forward(self, x):
            a = self.one(x)
            return torch.cat([a, self.three(x), self.five(x), self.pool(a)], 1)

    _reject(Block(), "is used by")


def test_rejects_second_input():
    class Block(SeqBlock):
        def forward(self, x, y):
            return torch.cat([self.one(x), self.three(x), self.five(y), self.pool(x)], 1)

    _reject(Block(), "2 inputs")


def test_rejects_input_used_elsewhere():
    class Block(SeqBlock):
        def forward(self, x):
            out = torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], 1)
            return out, x.sum()

    _reject(Block(), "not a torch.cat")

    class Block2(SeqBlock):
        def forward(self, x):
            print_me = x.mean()  # noqa: F841 -- dead code still reads x
            return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], 1)

    _reject(Block2(), "block input is also used by", ".mean()")


def test_rejects_mixed_relu():
    block = SeqBlock()
    block.pool = nn.Sequential(*block.pool[:2])
    _reject(block, "mixed ReLU", "pool_proj")


def test_rejects_relu6():
    _reject(_seq_with(one_1=nn.ReLU6()), "ReLU6")


def test_rejects_leaky_relu_function():
    _reject(FlexBlock(lambda t: F.leaky_relu(t), lambda ts: torch.cat(ts, 1)), "leaky_relu")


def test_rejects_bn_without_running_stats():
    block = DictBlock()
    block.norms["c"] = nn.BatchNorm2d(6, track_running_stats=False)
    _reject(block, "'norms.c'", "running statistics")


def test_rejects_shared_conv():
    block = SeqBlock(relu=False)
    block.five[0] = block.three[0]
    block.five[1] = nn.Conv2d(3, 3, 5, padding=2)
    _reject(block, "'three.0'", "shared")


def test_rejects_data_dependent_control_flow():
    class Block(SeqBlock):
        def forward(self, x):
            if x.sum() > 0:
                x = -x
            return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], 1)

    _reject(Block(), "not traceable")


def test_rejects_torchvision_aux_and_basic_conv(tv_googlenet):
    _reject(tv_googlenet.aux1, "not a torch.cat")
    _reject(tv_googlenet.conv1, "not a torch.cat")
    _reject(tv_googlenet, "not a torch.cat")


# --- fuse / unfuse ---------------------------------------------------------------------------

def test_fuse_torchvision_googlenet(tv_googlenet, caplog):
    before = {name: type(m) for name, m in tv_googlenet.named_modules()}
    with caplog.at_level(logging.INFO, logger="fused_inception"):
        fused, report = fuse_with_report(tv_googlenet)
    assert fused is not tv_googlenet
    assert report.swapped == [(name, "Inception") for name in GOOGLENET_BLOCK_NAMES]
    assert report.skipped == []
    assert report.stem == [("conv1", "maxpool1"), ("conv2", None), ("conv3", "maxpool2")]  # fused_inception/stem.py
    for name in GOOGLENET_BLOCK_NAMES:
        assert isinstance(getattr(fused, name), FusedInception)
    # the original is untouched
    assert {name: type(m) for name, m in tv_googlenet.named_modules()} == before
    assert list(fused.state_dict()) == list(tv_googlenet.state_dict())
    messages = [r.getMessage() for r in caplog.records if r.name == "fused_inception"]
    assert sum("swapped inception" in m for m in messages) == 9
    assert any("9 Inception block(s) swapped, 0 candidate(s) skipped" in m for m in messages)


def test_unfuse_restores_modules_and_state(tv_googlenet):
    restored = unfuse(fuse(tv_googlenet))
    assert [(n, type(m)) for n, m in restored.named_modules()] == \
        [(n, type(m)) for n, m in tv_googlenet.named_modules()]
    original, after = tv_googlenet.state_dict(), restored.state_dict()
    assert list(original) == list(after)
    assert all(torch.equal(original[k], after[k]) for k in original)


def test_fuse_inplace_returns_same_object():
    model = models.googlenet("paper", aux_logits=False, init_weights=False)
    assert fuse(model, inplace=True) is model
    assert all(isinstance(getattr(model, name), FusedInception) for name in GOOGLENET_BLOCK_NAMES)
    assert unfuse(model, inplace=True) is model
    assert all(type(getattr(model, name)) is models.Inception for name in GOOGLENET_BLOCK_NAMES)


def test_fuse_a_model_that_is_a_block():
    block = SeqBlock()
    fused = fuse(block, inplace=True)
    assert isinstance(fused, FusedInception) and fused.to_module() is block
    assert type(unfuse(fused)) is SeqBlock


def test_fuse_in_containers_with_report(caplog):
    class NearMiss(SeqBlock):  # a channel cat of convs, but a 2x2 pool: reported as skipped
        def __init__(self):
            super().__init__()
            self.pool[0] = nn.MaxPool2d(2, 1)

    class Untraceable(nn.Module):  # data-dependent branching around an Inception block
        def __init__(self):
            super().__init__()
            self.inner = SeqBlock()
            self.down = nn.MaxPool2d(2)

        def forward(self, x):
            return self.inner(x) if x.sum() > 0 else self.down(x)

    model = nn.Sequential(
        SeqBlock(relu=False),
        nn.ModuleList([DictBlock(), NearMiss()]),
        nn.ModuleDict({"blk": SeqBlock(), "head": nn.Conv2d(4, 4, 1)}),
        Untraceable(),
    )
    with caplog.at_level(logging.INFO, logger="fused_inception"):
        fused, report = fuse_with_report(model)
    assert report.swapped == [("0", "SeqBlock"), ("1.0", "DictBlock"), ("2.blk", "SeqBlock"),
                              ("3.inner", "SeqBlock")]
    assert [name for name, _ in report.skipped] == ["", "1.1", "3"]
    reasons = dict(report.skipped)
    assert "kernel 2" in reasons["1.1"] and "not traceable" in reasons["3"]
    assert isinstance(fused[0], FusedInception) and isinstance(fused[1][0], FusedInception)
    assert isinstance(fused[2]["blk"], FusedInception) and isinstance(fused[3].inner, FusedInception)
    assert type(fused[1][1]) is NearMiss and type(fused[2]["head"]) is nn.Conv2d
    assert list(fused.state_dict()) == list(model.state_dict())

    text = str(report)
    assert isinstance(report, FuseReport)
    assert "4 Inception block(s) swapped, 3 candidate(s) skipped" in text
    assert "swapped 1.0 (DictBlock)" in text and "skipped 1.1:" in text and "skipped <model>:" in text
    messages = [r.getMessage() for r in caplog.records if r.name == "fused_inception"]
    assert sum(m.startswith("fuse: swapped") for m in messages) == 4
    assert sum(m.startswith("fuse: skipped") for m in messages) == 3


def test_fuse_shared_block_swapped_once():
    block = SeqBlock()
    model = nn.Sequential(block, block)
    fused, report = fuse_with_report(model, inplace=True)
    assert report.swapped == [("0", "SeqBlock")]
    assert fused[0] is fused[1] and isinstance(fused[0], FusedInception)


def test_fused_user_block_computes_the_same(gen):
    """One tiny end-to-end check (Triton interpreter): a swapped user block gives the same output."""
    block = DictBlock().eval()
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=gen))
                module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.randn(module.num_features, generator=gen))
                    module.bias.copy_(torch.randn(module.num_features, generator=gen))
    x = torch.randn(2, 8, 5, 5, generator=gen)
    fused = fuse(block)
    assert isinstance(fused, FusedInception)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x), rtol=1e-4, atol=1e-4)
