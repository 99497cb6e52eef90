"""A fused model serializes at any time: pickle, torch.save/torch.load of the whole model and
copy.deepcopy, before and after a forward, in eval and in training, after an optimizer step, and
torch.load in a fresh Python process. The folded-weight cache is never part of the copied state."""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import fused_inception as fi
from block_helpers import SMALL, random_input
from fused_inception.models.randomize import random_block

SHAPE = (2, 3, 4, 5)


def _model(gen: torch.Generator) -> nn.Module:
    """conv -> fused Inception block -> ReLU, float32."""
    plain = nn.Sequential(nn.Conv2d(3, 8, 1), random_block(SMALL, gen), nn.ReLU()).float()
    model = fi.fuse(plain)
    assert isinstance(model[1], fi.FusedInception)
    return model


def _bring_to(model: nn.Module, state: str, gen: torch.Generator) -> None:
    """Put ``model`` in ``state`` (see the parametrization below)."""
    x = random_input(SHAPE, gen).float()
    if state == "fresh":
        model.eval()
    elif state == "eval-after-forward":
        model.eval()
        with torch.no_grad():
            model(x)
    elif state == "train-after-forward":
        model.train()
        model(x).sum().backward()
    elif state == "after-optimizer-step":
        model.eval()
        with torch.no_grad():
            model(x)  # fills the cache, which the step then makes stale
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(x).square().sum().backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            model(x)
    else:
        raise ValueError(state)


def _pickle(model):
    return pickle.loads(pickle.dumps(model))


def _torch_save(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)  # a whole module is not weights-only data


STATES = ["fresh", "eval-after-forward", "train-after-forward", "after-optimizer-step"]


@pytest.mark.parametrize("method", [_pickle, _torch_save, copy.deepcopy], ids=["pickle", "torch.save", "deepcopy"])
@pytest.mark.parametrize("state", STATES)
def test_whole_model_copies_at_any_time(state, method, gen):
    model = _model(gen)
    _bring_to(model, state, gen)
    had_cache = model[1].has_cached_weights
    assert had_cache == (state in ("eval-after-forward", "after-optimizer-step"))
    clone = method(model)
    assert not clone[1].has_cached_weights  # never copied: rebuilt from the copied weights on the first call
    assert model[1].has_cached_weights == had_cache  # and the original keeps its own
    assert [m.training for m in clone.modules()] == [m.training for m in model.modules()]
    state_dict, clone_state = model.state_dict(), clone.state_dict()
    assert list(clone_state) == list(state_dict)
    for key, value in state_dict.items():
        assert torch.equal(clone_state[key], value), key
    # the copied block is self-contained: its plain block shares the copied parameters
    assert clone[1].to_module().branch1.conv.weight is clone[1].branch1.conv.weight
    assert clone[1].branch1.conv.weight is not model[1].branch1.conv.weight
    x = random_input(SHAPE, gen).float()
    with torch.no_grad():  # in the model's own mode: a training copy updates its buffers as the original
        assert torch.equal(clone(x), model(x))
    for (name, a), b in zip(model.named_buffers(), clone.buffers()):
        assert torch.equal(a, b), name


def test_torch_load_in_a_fresh_process(gen, tmp_path):
    model = _model(gen)
    _bring_to(model, "after-optimizer-step", gen)
    x = random_input(SHAPE, gen).float()
    with torch.no_grad():
        expected = model(x)
    torch.save(model, tmp_path / "model.pt")
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(f"""
        import torch
        model = torch.load({str(tmp_path / 'model.pt')!r}, weights_only=False)
        x = torch.load({str(tmp_path / 'x.pt')!r})
        assert type(model[1]).__name__ == "FusedInception" and not model[1].has_cached_weights
        with torch.no_grad():
            torch.save(model(x), {str(tmp_path / 'out.pt')!r})
    """)
    # the child runs the kernels the same way (TRITON_INTERPRET as set up by conftest.py)
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ), timeout=300)
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)
