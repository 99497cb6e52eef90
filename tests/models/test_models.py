"""Reference GoogLeNet models: shapes, parameter counts, torchvision parity, the loss, the paper variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fused_inception.models import (
    BasicConv2d,
    GoogLeNet,
    GoogLeNetLoss,
    GoogLeNetOutputs,
    Inception,
    format_shape_table,
    googlenet,
    stage_shapes,
)
from fused_inception.spec import GOOGLENET_BLOCKS, googlenet_spec

BLOCKS = [f"inception{b}" for b in GOOGLENET_BLOCKS]

# Stage outputs at 224x224x3 (Szegedy et al. 2014, Table 1), as (C, H, W); logits as (num_classes,).
EXPECTED_SHAPES = [
    ("conv1", (64, 112, 112)),
    ("maxpool1", (64, 56, 56)),
    ("conv3", (192, 56, 56)),
    ("maxpool2", (192, 28, 28)),
    ("inception3a", (256, 28, 28)),
    ("inception3b", (480, 28, 28)),
    ("inception4a", (512, 14, 14)),
    ("inception4b", (512, 14, 14)),
    ("inception4c", (512, 14, 14)),
    ("inception4d", (528, 14, 14)),
    ("inception4e", (832, 14, 14)),
    ("inception5a", (832, 7, 7)),
    ("inception5b", (1024, 7, 7)),
    ("logits", (1000,)),
]

# Small enough to be fast, large enough for the paper's 5x5/3 aux pool (needs >= ~80 px).
SMALL_INPUT = (2, 3, 96, 96)


def _torchvision_googlenet(aux_logits: bool = True, transform_input: bool = False) -> nn.Module:
    return torchvision.models.googlenet(
        weights=None, aux_logits=aux_logits, transform_input=transform_input, init_weights=True
    )


def _randomize(model: nn.Module, seed: int = 0) -> None:
    """He-scaled conv/linear weights (torchvision's std 0.01 shrinks the signal until the output
    hardly depends on the input) and nonzero, non-identity BatchNorm statistics and affine."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def _aux_params(model: GoogLeNet) -> list[torch.Tensor]:
    return [*model.aux1.parameters(), *model.aux2.parameters()]


# --- shapes and sizes ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_stage_shapes_at_224(variant):
    model = googlenet(variant, init_weights=False).train()
    rows = stage_shapes(model, (1, 3, 224, 224))
    assert rows == EXPECTED_SHAPES
    assert model.training  # mode restored
    table = format_shape_table(rows)
    for text in ("112x112x64", "56x56x64", "56x56x192", "28x28x192", "28x28x256", "7x7x1024", "1000"):
        assert text in table
    assert len(table.splitlines()) == len(rows) + 2  # header + rule


def test_stage_shapes_unknown_module():
    with pytest.raises(ValueError, match="nope"):
        stage_shapes(googlenet(init_weights=False), stages=[("x", "nope")])


def test_torchvision_parameter_counts():
    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(googlenet("torchvision", aux_logits=False, init_weights=False)) == 6_624_904
    assert count(googlenet("torchvision", aux_logits=True, init_weights=False)) == 13_004_888


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_blocks_are_one_class_built_from_spec(variant):
    model = googlenet(variant, init_weights=False)
    for name in BLOCKS:
        block = getattr(model, name)
        assert type(block) is Inception
        assert block.spec == googlenet_spec(name.removeprefix("inception"), variant)
        assert isinstance(block.branch1, BasicConv2d)
        assert [type(m) for m in block.branch4] == [nn.MaxPool2d, BasicConv2d]
        assert block.branch4[0].kernel_size == 3 and block.branch4[0].stride == 1


def test_bad_variant_names_the_choices():
    with pytest.raises(ValueError, match=r"'resnet'.*'paper'.*'torchvision'"):
        googlenet("resnet")


def test_dropout_defaults():
    tv, paper = googlenet("torchvision", init_weights=False), googlenet("paper", init_weights=False)
    assert (tv.dropout.p, tv.aux1.dropout.p, tv.aux2.dropout.p) == (0.2, 0.7, 0.7)
    assert (paper.dropout.p, paper.aux1.dropout.p) == (0.4, 0.7)
    custom = googlenet("paper", dropout=0.1, dropout_aux=0.2, init_weights=False)
    assert (custom.dropout.p, custom.aux2.dropout.p) == (0.1, 0.2)


# --- torchvision parity ----------------------------------------------------------------------


@pytest.mark.parametrize("aux_logits", [True, False])
def test_torchvision_state_dict_keys_and_shapes(aux_logits):
    theirs = _torchvision_googlenet(aux_logits=aux_logits).state_dict()
    ours_model = googlenet("torchvision", aux_logits=aux_logits, init_weights=False)
    ours = ours_model.state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    # Both directions load strictly.
    ours_model.load_state_dict(theirs, strict=True)
    _torchvision_googlenet(aux_logits=aux_logits).load_state_dict(ours, strict=True)


def test_torchvision_variant_structure():
    model = googlenet("torchvision", init_weights=False)
    for name in BLOCKS:
        block = getattr(model, name)
        assert block.branch3[1].conv.kernel_size == (3, 3)  # torchvision issue 906
    for m in model.modules():
        if isinstance(m, BasicConv2d):
            assert m.conv.bias is None and m.bn.eps == 1e-3
        if isinstance(m, nn.MaxPool2d):
            assert m.ceil_mode


@pytest.mark.parametrize("transform_input", [False, True])
def test_torchvision_parity_eval_and_train(transform_input):
    theirs = _torchvision_googlenet(transform_input=transform_input)
    _randomize(theirs)
    ours = googlenet("torchvision", transform_input=transform_input, init_weights=False)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(*SMALL_INPUT)

    theirs.eval(), ours.eval()
    with torch.no_grad():
        ref, out = theirs(x), ours(x)
    assert isinstance(out, torch.Tensor)
    assert (ref[0] - ref[1]).abs().max() > 1e-2 * ref.abs().max()  # depends on the input
    torch.testing.assert_close(out, ref, rtol=0, atol=0)

    theirs.train(), ours.train()
    with torch.no_grad():
        torch.manual_seed(123)
        ref = theirs(x)
        torch.manual_seed(123)
        out = ours(x)
    assert isinstance(out, GoogLeNetOutputs)
    for name, a, b in zip(out._fields, out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m, name=name: f"{name}: {m}")
    # The BN running-stat updates match too.
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m, k=k: f"{k}: {m}")


# --- output convention and loss --------------------------------------------------------------


def test_loss_value_train_and_eval():
    logits, aux2, aux1 = (torch.randn(4, 10) for _ in range(3))
    target = torch.randint(0, 10, (4,))
    main, a1, a2 = (F.cross_entropy(t, target) for t in (logits, aux1, aux2))
    outputs = GoogLeNetOutputs(logits, aux2, aux1)
    torch.testing.assert_close(GoogLeNetLoss()(outputs, target), main + 0.3 * (a1 + a2))
    torch.testing.assert_close(GoogLeNetLoss(aux_weight=1.0)(outputs, target), main + a1 + a2)
    torch.testing.assert_close(GoogLeNetLoss(aux_weight=0.0)(outputs, target), main)
    torch.testing.assert_close(GoogLeNetLoss()(logits, target), main)  # eval: logits only
    # torchvision's own namedtuple has the same order and is accepted too.
    tv_outputs = torchvision.models.GoogLeNetOutputs(logits, aux2, aux1)
    torch.testing.assert_close(GoogLeNetLoss()(tv_outputs, target), main + 0.3 * (a1 + a2))
    with pytest.raises(ValueError):
        GoogLeNetLoss(aux_weight=-1.0)


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_aux_heads_train_only_outputs_and_gradients(variant):
    model = googlenet(variant, num_classes=10)
    x, target = torch.randn(*SMALL_INPUT), torch.tensor([3, 7])
    criterion = GoogLeNetLoss()

    model.train()
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert all(t.shape == (2, 10) for t in out)
    loss = criterion(out, target)
    expected = sum(
        w * F.cross_entropy(t, target) for w, t in ((1.0, out.logits), (0.3, out.aux_logits1), (0.3, out.aux_logits2))
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in _aux_params(model))

    model.zero_grad(set_to_none=True)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    loss = criterion(out, target)
    torch.testing.assert_close(loss, F.cross_entropy(out, target))
    loss.backward()
    assert all(p.grad is None for p in _aux_params(model))
    assert model.fc.weight.grad is not None


def test_no_aux_heads_without_aux_logits():
    model = googlenet("torchvision", aux_logits=False, num_classes=10, init_weights=False).train()
    assert model.aux1 is None and model.aux2 is None
    assert isinstance(model(torch.randn(*SMALL_INPUT)), torch.Tensor)


# --- paper variant ---------------------------------------------------------------------------


def test_paper_variant_structure():
    model = googlenet("paper", init_weights=False)
    for name in BLOCKS:
        block = getattr(model, name)
        assert block.branch2[1].conv.kernel_size == (3, 3)
        assert block.branch3[1].conv.kernel_size == (5, 5)  # a true 5x5
        assert block.branch3[1].conv.padding == (2, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert all(m.bn is None and m.relu for m in model.modules() if isinstance(m, BasicConv2d))
    for lrn in (model.lrn1, model.lrn2):
        assert isinstance(lrn, nn.LocalResponseNorm)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    assert model.maxpool4.kernel_size == 3


def test_paper_aux_pool_is_5x5_stride_3_at_224():
    # At 224 input the aux heads see 14x14 maps; the paper pools them 5x5/3 to 4x4.
    model = googlenet("paper", init_weights=False)
    x = torch.randn(2, 512, 14, 14)
    torch.testing.assert_close(model.aux1.pool(x), F.avg_pool2d(x, 5, stride=3), rtol=0, atol=0)


def test_paper_variant_init_is_finite_and_alive():
    model = googlenet("paper").eval()
    with torch.no_grad():
        out = model(torch.randn(*SMALL_INPUT))
    assert torch.isfinite(out).all() and out.std() > 1e-3
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(m.bias) == 0
