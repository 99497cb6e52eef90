"""Property-based tests (hypothesis) of fused user blocks against the float64 reference.

Random Inception-shaped user blocks, written here as a user would (nn.Sequential units of
Conv2d [-> BatchNorm2d] [-> ReLU], not this library's Inception class): channels 1-70, k3/k5 in
{1, 3, 5, 7}, conv bias or not, BN with random statistics and eps, affine or not, ReLU on or off,
each BN in eval or training mode independently, the four branches concatenated in a random order;
batch 0-3, H and W 1-17; inputs NCHW, channels_last, a channel slice of a larger tensor, H and W
transposed, every other batch item; fp32 and fp16; forward (the Triton kernels) and backward
(input and parameter gradients, BN buffers). And near-Inception modules (avg-pool branch, stride
2, an extra op, a 5x5 pool) that fuse() must leave untouched.

Replay: hypothesis is seeded from the run seed (FI_TEST_SEED, tests/conftest.py) and keeps no
example database, so a run's examples are a function of that seed alone.

Cost: in the Triton interpreter a kernel launch costs per tile and per dot, so random blocks are
drawn with a cap on interpreter_work (a proxy of the dot iterations): large channel counts come
with small k, small images or fp16. On CUDA the cap does not apply.
"""

from __future__ import annotations

import copy
import os

import torch
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from torch import nn

import fused_inception as fi
from block_helpers import CUDA, DEVICE, random_input
from fused_inception.models.randomize import randomize_block_
from fused_inception.tolerances import assert_close, assert_close_to_baseline, tolerance_key

RUN_SEED = int(os.environ["FI_TEST_SEED"])  # set by tests/conftest.py
BRANCHES = ("b1", "b3", "b5", "pool")
LAYOUTS = ("nchw", "channels_last", "channel-slice", "hw-transposed", "every-other-item")

# values per channel a training BN's statistics are taken over, at least (see block_cases)
MIN_BN_VALUES = 16
# interpreter work per example (see interpreter_work); on CUDA no cap
WORK_CAP = {torch.float32: 600, torch.float16: 1500}


def _settings(max_examples: int):
    return settings(max_examples=max_examples, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ---------------------------------------------------------------------------------------------
# user blocks


def unit(c_in: int, c_out: int, k: int, *, bias: bool, bn: bool, affine: bool, eps: float, relu: bool,
         stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out, eps=eps, affine=affine))
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UserBlock(nn.Module):
    """An Inception-shaped block with its branches concatenated in ``order``; ``pool`` and
    ``stride`` and ``extra`` make near-Inception variants (see near_inception)."""

    def __init__(self, c_in, c1, r3, c3, r5, c5, cp, k3, k5, *, bias, bn, affine, eps, relu, order,
                 pool: nn.Module | None = None, stride: int = 1, extra: nn.Module | None = None):
        super().__init__()
        opts = dict(bias=bias, bn=bn, affine=affine, eps=eps, relu=relu)
        self.b1 = unit(c_in, c1, 1, stride=stride, **opts)
        self.b3 = nn.Sequential(unit(c_in, r3, 1, stride=stride, **opts), unit(r3, c3, k3, **opts))
        self.b5 = nn.Sequential(unit(c_in, r5, 1, stride=stride, **opts), unit(r5, c5, k5, **opts))
        self.pool = nn.Sequential(pool if pool is not None else nn.MaxPool2d(3, stride=1, padding=1),
                                  unit(c_in, cp, 1, **opts))
        self.extra = extra
        self.order = tuple(order)

    def forward(self, x):
        outs = {name: getattr(self, name)(x) for name in BRANCHES}
        if self.extra is not None:
            outs["b1"] = self.extra(outs["b1"])
        return torch.cat([outs[name] for name in self.order], 1)


def interpreter_work(channels, k3: int, k5: int, pixels: int, dtype: torch.dtype) -> int:
    """A proxy of the Triton interpreter's cost for one forward: (pixel tiles) x (dot iterations
    per tile), channels in blocks of 16 (32 for half types) and the k x k taps counted."""
    if pixels == 0:
        return 0
    c_in, c1, r3, c3, r5, c5, cp = channels
    b = 16 if dtype == torch.float32 else 32

    def blocks(c):
        return -(-c // b)

    per_tile = (blocks(c_in) * (blocks(c1) + blocks(cp) * 3 + blocks(r3) + blocks(r5))
                + k3 * k3 * blocks(r3) * blocks(c3) + k5 * k5 * blocks(r5) * blocks(c5))
    return -(-pixels // 64) * per_tile


@st.composite
def block_cases(draw, dtypes=(torch.float32, torch.float16), train_modes=True):
    """(block kwargs, BN training flags, input shape, layout, dtype, torch seed)."""
    dtype = draw(st.sampled_from(dtypes))
    k3, k5 = draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([1, 3, 5, 7]))
    channels = [draw(st.integers(1, 70)) for _ in range(7)]
    cap = None if CUDA else WORK_CAP[dtype]
    if cap is not None:
        # shrink the channel counts (largest first) until one tile's work fits the cap
        while interpreter_work(channels, k3, k5, 1, dtype) > cap:
            i = max(range(7), key=lambda j: channels[j])
            channels[i] = max(1, channels[i] // 2)
    h, w = draw(st.integers(1, 17)), draw(st.integers(1, 17))
    n = draw(st.integers(0, 3))
    if cap is not None:
        while n * h * w > 0 and interpreter_work(channels, k3, k5, n * h * w, dtype) > cap:
            if n > 1:
                n -= 1
            else:
                h, w = (max(1, h // 2), w) if h >= w else (h, max(1, w // 2))
    bn = draw(st.booleans())
    kwargs = dict(bias=draw(st.booleans()), bn=bn, affine=draw(st.booleans()),
                  eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), relu=draw(st.booleans()),
                  order=draw(st.permutations(BRANCHES)))
    training = [draw(st.booleans()) for _ in range(6)] if (bn and train_modes) else [False] * 6
    if any(training):
        # Gradients through batch statistics are differences of nearly equal terms
        # (g - mean(g) - xhat * mean(g * xhat)): over 2 values per channel BN maps them to +-1
        # whatever they are and the gradient vanishes up to eps; a fan-in-1 conv before a training
        # BN only scales what BN divides out (same); over a few values (a max-pooled 3 x 1 image
        # repeats its maximum) the cancellation leaves fp32 rounding noise of 1e-4..1e-3 relative
        # (seen in this test: 7e-4 at 3 values). Such a result says nothing about the fused
        # block, so training BNs get at least MIN_BN_VALUES values per channel and fan-in 2.
        n = max(n, 1)
        h = max(h, -(-MIN_BN_VALUES // (n * w)))
        channels = [max(c, 2) for c in channels]
        # a conv bias before a training BN has a zero gradient (BN subtracts the batch mean), and
        # without ReLU so has every shift upstream that reaches a training BN through linear
        # units (an eval BN's beta, a bias): both sides are rounding noise there, which a
        # relative error cannot compare. Training BN is drawn with ReLU and without conv bias.
        kwargs["bias"], kwargs["relu"] = False, True
    layout = draw(st.sampled_from(LAYOUTS))
    return (channels, k3, k5, kwargs), training, (n, channels[0], h, w), layout, dtype, draw(st.integers(0, 2**32 - 1))


def build(block_args, training, dtype, gen) -> UserBlock:
    channels, k3, k5, kwargs = block_args
    block = randomize_block_(UserBlock(*channels, k3, k5, **kwargs).double(), gen).eval()
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn, mode in zip(bns, training):
        bn.train(mode)
    # the reference is the block with the fused model's parameters (rounded to dtype) in float64
    return block.to(dtype)


def make_input(shape, layout: str, dtype: torch.dtype, gen) -> torch.Tensor:
    """A [N, C, H, W] input in ``layout``: a contiguous tensor, channels_last, or a strided view."""
    n, c, h, w = shape
    if layout == "channel-slice":
        return random_input((n, c + 5, h, w), gen).to(dtype)[:, 2:2 + c]
    if layout == "hw-transposed":
        return random_input((n, c, w, h), gen).to(dtype).transpose(2, 3)
    if layout == "every-other-item":
        return random_input((2 * n, c, h, w), gen).to(dtype)[::2]
    x = random_input(shape, gen).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def _leaf(x: torch.Tensor) -> torch.Tensor:
    # detach keeps the view's strides: the fused block sees the strided layout
    return x.detach().requires_grad_()


def _check_block(case, backward: bool) -> None:
    block_args, training, shape, layout, dtype, torch_seed = case
    gen = torch.Generator().manual_seed(torch_seed)
    block = build(block_args, training, dtype, gen)
    reference = copy.deepcopy(block).double()
    fused = fi.fuse(copy.deepcopy(block)).to(DEVICE)
    assert isinstance(fused, fi.FusedInception)
    x = make_input(shape, layout, dtype, gen)
    key = tolerance_key(dtype)
    what = f"{block_args} bn-train={training} {shape} {layout} {dtype}"

    x_ref, x_dev = _leaf(x.double()), _leaf(x.to(DEVICE))
    assert x_dev.stride() == x.stride() or DEVICE != "cpu"
    if backward:
        out, ref = fused(x_dev), reference(x_ref)
        grad_out = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
        ref.backward(grad_out)
        out.backward(grad_out.to(device=DEVICE, dtype=dtype))
    else:
        with torch.no_grad():
            out, ref = fused(x_dev), reference(x_ref)
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close(out, ref, key, f"{what}: output")
    if backward:
        # Gradients sum products over every pixel, and the batch-statistics backward subtracts
        # per-channel means of products, which can cancel most digits even with the draws above
        # (seen: a fan-in-2 conv's weight gradient below a training BN, 16 values per channel:
        # 1.2e-3 fused, 3.7e-3 for the plain fp32 block; an fp16 conv weight gradient over 476
        # pixels without BN: 9.3e-3 fused). Gradients are held to the larger of the dtype's
        # tolerance and the plain block's own error in the same dtype (tolerances.BASELINE_FACTOR).
        plain = copy.deepcopy(block)
        x_plain = _leaf(x)
        plain(x_plain).backward(grad_out.to(dtype))
        plain_params = dict(plain.named_parameters())
        assert_close_to_baseline(x_dev.grad, x_ref.grad, x_plain.grad, key, f"{what}: grad x")
        ref_params = dict(reference.named_parameters())
        for name, p in fused.named_parameters():
            assert_close_to_baseline(p.grad, ref_params[name].grad, plain_params[name].grad, key, f"{what}: grad {name}")
    ref_buffers = dict(reference.named_buffers())
    for name, b in fused.named_buffers():  # running statistics: updated by training BNs only
        if b.is_floating_point():
            assert_close(b, ref_buffers[name], key, f"{what}: buffer {name}")
        else:
            assert torch.equal(b.cpu(), ref_buffers[name]), f"{what}: buffer {name}"


_BN_BLOCK = ([8, 5, 6, 7, 3, 4, 6], 3, 5, dict(bias=False, bn=True, affine=True, eps=1e-3, relu=True,
                                                 order=("pool", "b5", "b1", "b3")))
_NO_RELU = ([8, 5, 6, 7, 3, 4, 6], 5, 7, dict(bias=True, bn=True, affine=False, eps=1e-5, relu=False,
                                                order=("b3", "pool", "b1", "b5")))


@seed(RUN_SEED)
@_settings(max_examples=8)
@given(case=block_cases())
def test_forward_matches_float64(case):
    _check_block(case, backward=False)


@seed(RUN_SEED)
@_settings(max_examples=6)
@given(case=block_cases())
# always run: ReLU off in backward; BN training on a channels_last input and on a strided view
@example(case=(_NO_RELU, [False] * 6, (2, 8, 5, 6), "nchw", torch.float32, 1))
@example(case=(_BN_BLOCK, [True] * 6, (2, 8, 5, 6), "channels_last", torch.float32, 2))
@example(case=(_BN_BLOCK, [True, False, True, True, False, False], (3, 8, 4, 5), "every-other-item",
               torch.float32, 3))
# fp16 with training BN (found by this test; the fused block raises where the plain one runs):
# BN without affine parameters, and a block whose BNs are in mixed modes
@example(case=((_BN_BLOCK[0], 1, 3, {**_BN_BLOCK[3], "affine": False}), [True] * 6, (2, 8, 4, 4), "nchw",
               torch.float16, 4))
@example(case=(_BN_BLOCK, [False, False, True, False, False, False], (2, 8, 4, 4), "nchw", torch.float16, 5))
def test_backward_matches_float64(case):
    _check_block(case, backward=True)


def test_cpu_half_precision_training_keeps_its_layout(monkeypatch):
    """Found by the test above with the interpreter off (the CPU as a user has it, which runs
    aten-bn in BN training): computed in channels_last, PyTorch's CPU fp16 kernels gave this
    block's input gradient 3.2e-2 relative against the unfused block's 5.2e-4; the aten tactics
    now keep half precision's layout on the CPU (block_io.aten_compute_layout)."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    block_args = ([2, 39, 10, 2, 61, 2, 2], 3, 1,
                  {"bias": False, "bn": True, "affine": False, "eps": 1e-05, "relu": True,
                   "order": ["b1", "b3", "b5", "pool"]})
    _check_block((block_args, [True] + [False] * 5, (1, 2, 12, 9), "nchw", torch.float16, 0), backward=True)


# ---------------------------------------------------------------------------------------------
# near-Inception modules: fuse() must not touch them

NEAR_INCEPTION = {
    "avg-pool branch": dict(pool=nn.AvgPool2d(3, stride=1, padding=1)),
    "stride 2": dict(pool=nn.MaxPool2d(3, stride=2, padding=1), stride=2),
    "extra op": dict(extra=nn.Tanh()),
    "5x5 pool": dict(pool=nn.MaxPool2d(5, stride=1, padding=2)),
}


@seed(RUN_SEED)
@_settings(max_examples=8)
@given(case=block_cases(dtypes=(torch.float32,), train_modes=False), variant=st.sampled_from(sorted(NEAR_INCEPTION)))
def test_near_inception_is_left_untouched(case, variant):
    (channels, k3, k5, kwargs), _, shape, layout, dtype, torch_seed = case
    gen = torch.Generator().manual_seed(torch_seed)
    block = randomize_block_(UserBlock(*channels, k3, k5, **kwargs, **copy.deepcopy(NEAR_INCEPTION[variant])),
                             gen).eval()
    model = nn.Sequential(block)
    fused = fi.fuse(model)
    assert not any(isinstance(m, fi.FusedInception) for m in fused.modules()), variant
    x = make_input(shape, layout, dtype, gen)
    with torch.no_grad():
        assert torch.equal(fused(x), model(x)), variant


def test_user_block_fuses():
    """The property tests' UserBlock is Inception-shaped in any branch order (else they would
    test nothing): fuse() swaps it for a FusedInception."""
    block = UserBlock(8, 5, 6, 7, 3, 4, 6, 3, 5, bias=True, bn=True, affine=False, eps=1e-5, relu=True,
                      order=("b5", "pool", "b3", "b1"))
    assert isinstance(fi.fuse(block), fi.FusedInception)
