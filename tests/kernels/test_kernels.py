"""Parity of the fused Inception forward (Triton kernels, interpreter on the CPU) against a float64
reference block, plus its launch count (four per block), slice writes, input errors and int32 index guards.

GoogLeNet's blocks: every block in fp16 (bf16 too on CUDA), channels_last, at an odd size; in
fp32 every block on CUDA, and in the interpreter one block per distinct fp32 channel tiling
(fp32_structure), since a large block takes minutes there."""

from __future__ import annotations

import math
import random

import pytest
import torch
import triton
import triton.language as tl

from block_helpers import CUDA, DEVICE, random_input, tf32_round
from fused_inception.folding import params_of_reference_block
from fused_inception.models.randomize import random_block
from fused_inception import InceptionParams, inception_forward, kernels
from fused_inception import forward
from fused_inception.kernels.tf32 import round_tf32, round_tf32_tensor
from fused_inception.tolerances import assert_close, compare, poisoned, tolerance_key
from fused_inception.spec import GOOGLENET_BLOCKS, InceptionSpec, googlenet_spec

TRITON = forward.uses_triton(torch.empty(0))  # True under the interpreter (conftest) or with CUDA
# bf16 dots are wrong in the Triton interpreter: on the CPU fp16 stands in for the half types,
# on CUDA both run
HALF_DTYPES = [torch.float16] + ([torch.bfloat16] if CUDA else [])


def run_and_check(spec: InceptionSpec, shape, dtype, channels_last, gen, extra=(0, 0)):
    """Run the fused block on a NaN-poisoned output and compare with the float64 reference.

    ``extra`` = (channels before, channels after) the block's slice in the output buffer; they
    hold a sentinel that must survive.
    """
    block = random_block(spec, gen)
    x64 = random_input(shape, gen)
    x = x64.to(dtype)
    with torch.no_grad():
        ref = block(x.double())  # the reference sees the same rounded input
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(DEVICE).contiguous(memory_format=fmt)
    params = params_of_reference_block(block, dtype).to(device=DEVICE)
    before, after = extra
    n, _, h, w = shape
    out = poisoned((n, before + spec.out_channels + after, h, w), dtype, DEVICE, fmt)
    sentinel = 12345.0
    out[:, :before] = sentinel
    out[:, before + spec.out_channels:] = sentinel
    result = inception_forward(x, params, out=out, out_channel_offset=before)
    assert result is out
    assert_close(out[:, before:before + spec.out_channels], ref, tolerance_key(dtype),
                 f"{spec} {tuple(shape)} {dtype}")
    assert bool((out[:, :before] == sentinel).all()), "channels before the slice were written"
    assert bool((out[:, before + spec.out_channels:] == sentinel).all()), "channels after the slice were written"
    return out


GOOGLENET_CASES = [(name, variant) for variant in ("paper", "torchvision") for name in GOOGLENET_BLOCKS]


def fp32_structure(spec: InceptionSpec) -> tuple:
    """What sets one block's fp32 (IEEE) launches apart in the kernels: the k x k sizes, BN or
    bias, and each tiled channel count against its block size in the picked fp32 configs (its
    remainder, which decides the partial-block masks, and whether it is below one block)."""
    pw = kernels.pick_pointwise_config("float32", "ieee")
    rc = kernels.pick_reduce_conv_config("float32", "ieee")
    tiled = ((spec.in_channels, pw.BLOCK_K), (spec.ch1x1, pw.BLOCK_N), (spec.pool_proj, pw.BLOCK_N),
             (spec.in_channels, rc.BLOCK_K), (spec.ch3x3red, rc.BLOCK_R), (spec.ch3x3red, rc.BLOCK_RK),
             (spec.ch3x3, rc.BLOCK_N), (spec.ch5x5red, rc.BLOCK_R), (spec.ch5x5red, rc.BLOCK_RK),
             (spec.ch5x5, rc.BLOCK_N))
    return (spec.k3, spec.k5, spec.batch_norm, spec.conv_bias) + tuple((c % b, c < b) for c, b in tiled)


def _macs(spec: InceptionSpec) -> int:
    s = spec
    return (s.in_channels * (s.ch1x1 + s.ch3x3red + s.ch5x5red + s.pool_proj)
            + s.k3 ** 2 * s.ch3x3red * s.ch3x3 + s.k5 ** 2 * s.ch5x5red * s.ch5x5)


def fp32_cases() -> list:
    """The fp32 sweep: every block on CUDA. In the interpreter (minutes per large block), one
    block per distinct fp32_structure, the cheapest, its id naming the blocks it stands for; every
    block still runs in the half-precision sweep below, whose configs tile channels differently."""
    if CUDA:
        return [pytest.param(name, variant, id=f"{name}-{variant}") for name, variant in GOOGLENET_CASES]
    groups: dict[tuple, list] = {}
    for name, variant in GOOGLENET_CASES:
        groups.setdefault(fp32_structure(googlenet_spec(name, variant)), []).append((name, variant))
    cases = []
    for members in groups.values():
        name, variant = min(members, key=lambda m: _macs(googlenet_spec(*m)))
        others = "".join(f"+{n}" for n, _ in members if n != name)
        cases.append(pytest.param(name, variant, id=f"{name}{others}-{variant}"))
    return cases


@pytest.mark.parametrize(("name", "variant"), fp32_cases())
def test_googlenet_block_7x7_fp32(name, variant, gen):
    """The smallest batch whose 7x7 images span two fp32 reduce -> k x k tiles (batch 1 with
    BLOCK_M 32); tiles that cross images are covered by the batch-2 tests (test_relu_off,
    test_random_configs, tests/test_nan_inf.py)."""
    batch = kernels.pick_reduce_conv_config("float32", "ieee").BLOCK_M // 49 + 1
    run_and_check(googlenet_spec(name, variant), (batch, GOOGLENET_BLOCKS[name][0][0], 7, 7),
                  torch.float32, channels_last=False, gen=gen)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
@pytest.mark.parametrize("name", list(GOOGLENET_BLOCKS))
def test_googlenet_block_odd_size_half_channels_last(name, variant, dtype, gen):
    out = run_and_check(googlenet_spec(name, variant), (1, GOOGLENET_BLOCKS[name][0][0], 5, 9),
                        dtype, channels_last=True, gen=gen)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, *HALF_DTYPES], ids=str)
def test_relu_off(dtype, channels_last, gen):
    """Blocks without ReLU (every k x k size, BN and bias), deterministically: the kernels'
    APPLY_RELU=False variants and the reduce scratch's zero padding of a signed reduction."""
    for k3, k5, batch_norm in ((1, 7, True), (3, 5, False)):
        spec = InceptionSpec(10, 5, 6, 7, 3, 4, 6, k3=k3, k5=k5, batch_norm=batch_norm, conv_bias=not batch_norm,
                             relu=False)
        run_and_check(spec, (2, 10, 6, 7), dtype, channels_last, gen, extra=(2, 1))


def _random_spec(rng: random.Random) -> InceptionSpec:
    ch = [rng.randint(1, 64) for _ in range(7)]
    return InceptionSpec(*ch, k3=rng.choice([1, 3, 5, 7]), k5=rng.choice([1, 3, 5, 7]),
                         batch_norm=rng.random() < 0.5, conv_bias=rng.random() < 0.5,
                         relu=rng.random() < 0.7, bn_eps=rng.choice([1e-3, 1e-5]))


@pytest.mark.parametrize("case", range(10))
def test_random_configs(case, gen):
    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=gen)))
    spec = _random_spec(rng)
    shape = (rng.randint(1, 2), spec.in_channels, rng.randint(1, 10), rng.randint(1, 10))
    dtype = rng.choice([torch.float32, *HALF_DTYPES])
    run_and_check(spec, shape, dtype, channels_last=rng.random() < 0.5, gen=gen,
                  extra=(rng.randint(0, 5), rng.randint(0, 5)))


def test_padding_semantics_negative_input(gen):
    """All-negative input: a 0-padded max-pool would give 0 at the border instead of the max of
    negatives; a large positive reduce bias makes act(bias) at out-of-image halo pixels nonzero."""
    spec = InceptionSpec(24, 8, 16, 16, 16, 8, 8, k3=3, k5=5, batch_norm=False, conv_bias=True)
    block = random_block(spec, gen)
    with torch.no_grad():
        block.branch2[0].conv.bias.fill_(3.0)
        block.branch3[0].conv.bias.fill_(3.0)
    x64 = -random_input((1, 24, 6, 5), gen).abs() - 1.0
    ref = block(x64)
    params = params_of_reference_block(block, torch.float32).to(device=DEVICE)
    out = inception_forward(x64.float().to(DEVICE), params)
    assert_close(out, ref, "float32")


def test_extra_channels_on_both_sides(gen):
    spec = googlenet_spec("3a", "torchvision")
    run_and_check(spec, (1, 192, 4, 6), torch.float32, channels_last=True, gen=gen, extra=(7, 5))


def test_empty_batch_and_1x1_image(gen):
    spec = InceptionSpec(16, 16, 16, 16, 16, 16, 16)
    block = random_block(spec, gen)
    params = params_of_reference_block(block, torch.float32).to(device=DEVICE)
    empty = inception_forward(torch.randn(0, 16, 5, 5, device=DEVICE), params)
    assert empty.shape == (0, 64, 5, 5)
    run_and_check(spec, (2, 16, 1, 1), torch.float32, channels_last=False, gen=gen)


@pytest.mark.skipif(not TRITON, reason="counts Triton launches; the PyTorch path launches none")
def test_four_launches_per_block(gen):
    """pointwise_pool twice (branch 1, then the pool projection: IS_POOL, a constexpr split so
    each compiles alone), reduce_conv once per reduce -> k x k branch."""
    spec = googlenet_spec("3a", "paper")
    with forward.count_launches() as launches:
        run_and_check(spec, (1, 192, 3, 3), torch.float32, channels_last=False, gen=gen)
    assert (launches.pointwise_pool, launches.reduce_conv) == (2, 2)


@pytest.mark.skipif(not TRITON, reason="counts Triton launches; the PyTorch path launches none")
def test_empty_input_launches_nothing(gen):
    params = params_of_reference_block(random_block(googlenet_spec("3a", "paper"), gen), torch.float32)
    with forward.count_launches() as launches:
        inception_forward(torch.randn(0, 192, 3, 3, device=DEVICE), params.to(device=DEVICE))
    assert launches.total == 0


def test_pytorch_path_without_interpreter(gen, monkeypatch):
    """A CPU tensor with the interpreter off runs the equivalent PyTorch path, with the same results."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x = torch.randn(1, 8, 4, 4)
    assert not forward.uses_triton(x)
    spec = InceptionSpec(8, 4, 6, 5, 3, 7, 2, k3=3, k5=5, batch_norm=True, conv_bias=False)
    block = random_block(spec, gen)
    x64 = random_input((2, 8, 5, 7), gen)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        x = x64.to(dtype)
        out = inception_forward(x, params_of_reference_block(block, dtype))
        assert_close(out, block(x.double()), tolerance_key(dtype), f"PyTorch path {dtype}")


class TestErrors:
    spec = InceptionSpec(8, 4, 4, 4, 4, 4, 4)

    @pytest.fixture
    def params(self, gen):
        return params_of_reference_block(random_block(self.spec, gen), torch.float32)

    def test_not_4d(self, params):
        with pytest.raises(ValueError, match=r"4-D input.*got 3-D"):
            inception_forward(torch.randn(8, 4, 4), params)

    def test_channel_mismatch(self, params):
        with pytest.raises(ValueError, match="expected 8 input channels, got 6"):
            inception_forward(torch.randn(1, 6, 4, 4), params)

    def test_dtype_mismatch(self, params):
        with pytest.raises(TypeError, match="torch.float16 does not match the weights' dtype torch.float32"):
            inception_forward(torch.randn(1, 8, 4, 4, dtype=torch.float16), params)

    def test_unsupported_dtype(self, params):
        with pytest.raises(TypeError, match="got torch.float64"):
            inception_forward(torch.randn(1, 8, 4, 4, dtype=torch.float64, device=DEVICE), params.to(device=DEVICE))

    def test_device_mismatch(self, params):
        with pytest.raises(ValueError, match="input is on meta but the weights are on cpu"):
            inception_forward(torch.empty(1, 8, 4, 4, device="meta"), params)

    def test_out_too_narrow(self, params):
        with pytest.raises(ValueError, match="needs at least 19"):
            inception_forward(torch.randn(1, 8, 4, 4), params, out=torch.empty(1, 18, 4, 4),
                              out_channel_offset=3)

    def test_out_wrong_spatial(self, params):
        with pytest.raises(ValueError, match=r"expected out of shape \[1, >= 16, 4, 4\]"):
            inception_forward(torch.randn(1, 8, 4, 4), params, out=torch.empty(1, 16, 4, 5))

    def test_not_a_tensor(self, params):
        with pytest.raises(TypeError, match="got ndarray"):
            inception_forward(torch.randn(1, 8, 4, 4).numpy(), params)

    def test_offset_without_out(self, params):
        with pytest.raises(ValueError, match="out_channel_offset needs an out tensor"):
            inception_forward(torch.randn(1, 8, 4, 4), params, out_channel_offset=2)

    @pytest.mark.parametrize("bad", ["dtype", "device", "narrow", "negative offset"])
    def test_refused_out_is_not_written(self, params, bad):
        """Each refusal names expected and actual, and leaves ``out`` as it was."""
        x = torch.randn(1, 8, 4, 4)
        out, offset, error, match = {
            "dtype": (poisoned((1, 16, 4, 4), torch.float16, "cpu"), 0, TypeError,
                      "out dtype torch.float16 does not match the input dtype torch.float32"),
            "device": (torch.empty(1, 16, 4, 4, device="meta"), 0, ValueError,
                       "out is on meta but the input is on cpu"),
            "narrow": (poisoned((1, 17, 4, 4), torch.float32, "cpu"), 2, ValueError,
                       "out has 17 channels; the block writes \\[2, 18\\) and needs at least 18"),
            "negative offset": (poisoned((1, 20, 4, 4), torch.float32, "cpu"), -1, ValueError,
                                "out_channel_offset must be >= 0, got -1"),
        }[bad]
        with pytest.raises(error, match=match):
            inception_forward(x, params, out=out, out_channel_offset=offset)
        if out.device.type != "meta":
            assert bool(out.isnan().all()), "a refused call wrote into out"


class TestIndexGuards:
    """Shapes whose int32 kernel indices (flattened pixel, scratch row offset, weight index) could
    overflow are refused on every path, checked on meta tensors (no memory, no compute)."""

    spec = InceptionSpec(8, 4, 4, 4, 4, 4, 4, k3=3, k5=7)

    @pytest.fixture
    def params(self, gen):
        return params_of_reference_block(random_block(self.spec, gen), torch.float32).to(device="meta")

    @staticmethod
    def largest_ok_width(params, n: int, h: int) -> int:
        """The widest W whose flattened pixel index bound still fits (bisection on the check)."""
        lo, hi = 1, 2**31
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok = max(forward.kernel_index_extents((n, 8, h, mid), params).values()) <= forward.INT32_MAX
            lo, hi = (mid, hi) if ok else (lo, mid)
        return lo

    def test_over_2_31_pixels(self, params):
        with pytest.raises(ValueError, match=r"flattened pixel index would reach \d+, above 2\*\*31 - 1 "
                                             r"\(N\*H\*W = 2147488281 pixels\)"):
            inception_forward(torch.empty(1, 8, 46341, 46341, device="meta"), params)

    def test_tile_overrun_below_2_31_pixels(self, params):
        """Below 2**31 pixels the last tile and its k x k halo can still run past int32: the
        widest accepted image runs (on meta), one column more is refused, though its N*H*W is
        still below 2**31."""
        h = 2**15
        edge = self.largest_ok_width(params, 1, h)
        assert h * (edge + 1) < 2**31
        out = inception_forward(torch.empty(1, 8, h, edge, device="meta"), params)
        assert out.shape == (1, 16, h, edge)
        with pytest.raises(ValueError, match=f"flattened pixel index .*N\\*H\\*W = {h * (edge + 1)} pixels"):
            inception_forward(torch.empty(1, 8, h, edge + 1, device="meta"), params)

    def test_scratch_offset_of_a_wide_image(self, params):
        """2**28 pixels in one row: a k x k halo of 3 rows' worth each side times the reduced
        channels overflows the scratch slot's int32 row offsets."""
        with pytest.raises(ValueError, match="scratch row offset would reach"):
            inception_forward(torch.empty(1, 8, 1, 2**28, device="meta"), params)

    def test_weight_index(self):
        """2**16 input channels into 2**15 + 2**15 pointwise columns: 2**32 weight elements."""
        def unit(c_out, c_in):
            return torch.empty(c_out, c_in, 1, 1, device="meta"), torch.empty(c_out, device="meta")

        c_in = 2**16
        params = InceptionParams.from_conv_weights(unit(2**15, c_in), unit(1, c_in), unit(1, 1), unit(1, c_in),
                                                   unit(1, 1), unit(2**15, c_in))
        with pytest.raises(ValueError, match="weight index would reach 4294967295"):
            inception_forward(torch.empty(1, c_in, 1, 1, device="meta"), params)


def test_output_memory_format_follows_input():
    x = torch.randn(2, 3, 4, 5)
    assert forward.output_memory_format(x) == torch.contiguous_format
    assert forward.output_memory_format(x.contiguous(memory_format=torch.channels_last)) == torch.channels_last
    assert math.isnan(poisoned((1,), torch.float32, "cpu").item())


def _tf32_reference(x: torch.Tensor, params: InceptionParams) -> torch.Tensor:
    """The block in float64 from operands rounded where the kernels round them before a TF32 dot:
    the input, every weight, and the reduced activations (the scratch the k x k dot reads)."""
    F = torch.nn.functional
    conv = {name: (tf32_round(w.cpu()), b.cpu().double()) for name, (w, b) in params.to_conv_weights().items()}
    act = torch.relu if params.relu else (lambda t: t)
    xr = tf32_round(x.cpu())

    def unit(name: str, inp: torch.Tensor) -> torch.Tensor:
        w, b = conv[name]
        return act(F.conv2d(inp, w, b, padding=w.shape[-1] // 2))

    branches = {"branch1": unit("branch1", xr),
                "conv3": unit("conv3", tf32_round(unit("reduce3", xr))),
                "conv5": unit("conv5", tf32_round(unit("reduce5", xr))),
                "pool_proj": unit("pool_proj", F.max_pool2d(xr, 3, 1, 1))}
    return torch.cat([branches[name] for name in params.cat_order], dim=1)


@pytest.mark.skipif(not TRITON, reason="selects a Triton launch config")
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_tf32_dots_round_their_operands(variant, gen, monkeypatch):
    """The fp32 TF32 launch configs ('tf32' reduce_conv tiling) round every dot operand to the
    nearest TF32 value, as cuDNN does (an H200 measured the truncating dots at 3x cuDNN's error):
    the output matches a float64 block run on operands rounded the same way to float32 accuracy.
    The interpreter computes the dot in IEEE from the rounded operands; a GPU's tensor cores
    multiply TF32 operands exactly and accumulate in float32, so the same bound holds there."""
    monkeypatch.setattr(forward, "dot_precision", lambda x: "tf32")
    spec = googlenet_spec("4b", variant)  # R = 24 and 112: partial BLOCK_R blocks
    block = random_block(spec, gen)
    x64 = random_input((2, spec.in_channels, 5, 6), gen)
    params = params_of_reference_block(block, torch.float32).to(device=DEVICE)
    x = x64.float()
    out = inception_forward(x.to(DEVICE), params)
    # the float32 accumulation of a reduced value and the float64 one of the reference can round to
    # neighbouring TF32 values at a rounding boundary: up to 4.2e-6 seen over 18 seeds, so 3e-5;
    # any rounding left out gives 1.3e-4 and more
    exact = compare(out, _tf32_reference(x, params), "float32")
    assert exact.rel_error <= 3e-5, f"{variant} 4b, tf32 dots against rounded operands: {exact}"
    assert_close(out, block(x64), "tf32", f"{variant} 4b, tf32 dots against the float64 block")


@triton.jit
def _rounding_kernel(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(dst + offs, round_tf32(tl.load(src + offs, mask=mask), "tf32"), mask=mask)


@pytest.mark.skipif(not TRITON, reason="runs a Triton kernel")
def test_tf32_rounding_edge_cases():
    """round_tf32 (in a kernel) and round_tf32_tensor (before a launch) agree bit for bit with each
    other and with the definition (tf32_round) on ties, carries into the exponent, the largest
    finite values (to Inf), +-Inf, -0 and NaN."""
    bits = torch.tensor([0x3F800000, 0x3F801000, 0x3F800FFF, 0x3F802000, 0x3FFFF000, 0xBF801000, 0x7F7FFFFF,
                         0x7F7FEFFF, 0x7F800000, 0xFF800000, 0x80000000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF,
                         0x00800000, 0x3EAAAAAB], dtype=torch.int64)
    values = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).view(torch.float32)
    out = torch.empty_like(values, device=DEVICE)
    _rounding_kernel[(1,)](values.to(DEVICE), out, len(values), BLOCK=16)
    in_kernel = out.cpu()
    host = round_tf32_tensor(values.to(DEVICE)).cpu()
    finite_or_inf = ~torch.isnan(values)
    assert torch.equal(in_kernel.view(torch.int32)[finite_or_inf], host.view(torch.int32)[finite_or_inf])
    assert torch.equal(host.double()[finite_or_inf], tf32_round(values)[finite_or_inf])
    assert bool(torch.isnan(in_kernel[~finite_or_inf]).all()) and bool(torch.isnan(host[~finite_or_inf]).all())
    assert host[6].item() == math.inf and host[4].item() == 2.0 and host[1].item() == 1.0 + 2**-10
