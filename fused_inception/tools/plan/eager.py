"""The launches of eager PyTorch GoogLeNet inference, traced from shapes alone.

Eager launches are those PyTorch eager issues for the reference model in eval mode (NCHW): per
conv unit conv (cuDNN), BatchNorm, in-place ReLU (torchvision variant) or conv, bias add, in-place
ReLU (paper variant: ATen's cuDNN path adds the bias in a separate ``add_`` kernel, see
aten/src/ATen/native/Convolution.cpp, ``ConvBackend::Cudnn``); pools; LRN as the 8
kernels of ``F.local_response_norm`` (mul, constant_pad_nd = fill + copy, avg_pool3d, mul, add,
pow, div); one ``torch.cat`` per block; adaptive average pool; linear (one cuBLASLt GEMM with the
bias in its epilogue). Dropout (identity in eval) and flatten (a view) launch nothing; the aux heads
do not run in eval; ``transform_input`` is off (the default). cuDNN layout transposes, if any, are
not modelled (they would only add to eager).
"""

from __future__ import annotations

from dataclasses import dataclass

from fused_inception.dtypes import DTYPE_NAMES
from fused_inception.spec import BLOCK_NAMES, VARIANTS, InceptionSpec, googlenet_spec
from fused_inception.tools.plan.launches import Launch, dtype_bytes
from fused_inception.tools.plan.shapes import conv_out, pool_out

NUM_CLASSES = 1000
# what an inference BatchNorm reads besides its input: weight, bias, running mean and variance, [C] each
BN_PARAMS_PER_CHANNEL = 4


@dataclass(frozen=True)
class StemUnit:
    """One conv unit of GoogLeNet's stem (docs/DESIGN.md §4): a k x k conv ``cin`` -> ``cout``
    channels and, where ``pool`` names one, the max-pool that follows it (``STEM_POOL``)."""

    name: str
    cin: int
    cout: int
    k: int
    stride: int = 1
    pad: int = 0
    pool: str = ""  # the max-pool after the unit ("": none)


STEM_UNITS = (StemUnit("conv1", 3, 64, 7, stride=2, pad=3, pool="maxpool1"),
              StemUnit("conv2", 64, 64, 1),
              StemUnit("conv3", 64, 192, 3, pad=1, pool="maxpool2"))
STEM_POOL = (3, 2)  # (kernel, stride) of maxpool1 and maxpool2: no padding, ceil_mode


class EagerTracer:
    """Accumulates the eager launches of one network: a tiny shape-tracking tracer."""

    def __init__(self, network: str, variant: str, batch: int, dtype: str, bias_add_separate: bool) -> None:
        self.network = network
        self.paper = variant == "paper"
        self.n = batch
        self.e = dtype_bytes(dtype)
        self.bias_add_separate = bias_add_separate
        self.launches: list[Launch] = []

    def act(self, c: int, h: int, w: int) -> int:
        """Bytes of an activation [N, c, h, w]."""
        return self.n * c * h * w * self.e

    def add(self, block: str, name: str, kind: str, flops: int, hbm: int, math_kind: str = "none", detail: str = "") -> None:
        self.launches.append(Launch(self.network, block, name, kind, int(flops), int(hbm), math=math_kind, detail=detail))

    def conv_launch(self, block: str, name: str, cin: int, cout: int, k: int, h: int, w: int,
                    stride: int = 1, pad: int = 0) -> tuple[int, int]:
        """The conv launch of a conv unit (cuDNN; the paper variant's bias in its epilogue when
        ``bias_add_separate`` is off); returns (H', W')."""
        ho, wo = conv_out(h, k, stride, pad), conv_out(w, k, stride, pad)
        x, y = self.act(cin, h, w), self.act(cout, ho, wo)
        wbytes = cout * cin * k * k * self.e
        macs = self.n * ho * wo * cout * cin * k * k
        shape = f"{k}x{k}/{stride} {cin}>{cout} {h}x{w}>{ho}x{wo}"
        bias = cout * self.e if self.paper and not self.bias_add_separate else 0
        self.add(block, f"{name}.conv {shape}", "conv", 2 * macs, x + wbytes + bias + y, "conv", shape)
        return ho, wo

    def conv_unit(self, block: str, name: str, cin: int, cout: int, k: int, h: int, w: int,
                  stride: int = 1, pad: int = 0) -> tuple[int, int]:
        """conv [+ bias add] + BN + ReLU (torchvision) or conv + bias + ReLU (paper); returns (H', W')."""
        ho, wo = self.conv_launch(block, name, cin, cout, k, h, w, stride, pad)
        y = self.act(cout, ho, wo)
        if self.paper:
            if self.bias_add_separate:
                self.add(block, f"{name}.bias add_", "bias_add", 0, 2 * y + cout * self.e)
        else:
            self.add(block, f"{name}.bn", "bn", 0, 2 * y + BN_PARAMS_PER_CHANNEL * cout * self.e)
        self.add(block, f"{name}.relu_", "relu", 0, 2 * y)
        return ho, wo

    def maxpool(self, block: str, name: str, c: int, h: int, w: int, k: int, stride: int, pad: int = 0,
                ceil_mode: bool = True) -> tuple[int, int]:
        ho, wo = pool_out(h, k, stride, pad, ceil_mode), pool_out(w, k, stride, pad, ceil_mode)
        self.add(block, f"{name} {k}x{k}/{stride} {h}x{w}>{ho}x{wo}", "maxpool", 0,
                 self.act(c, h, w) + self.act(c, ho, wo), detail=f"C={c}")
        return ho, wo

    def lrn(self, block: str, name: str, c: int, h: int, w: int, size: int = 5) -> None:
        """F.local_response_norm on a 4-D input: 8 kernels (see its source)."""
        x = self.act(c, h, w)
        padded = self.act(c + size - 1, h, w)
        steps = [
            ("mul x*x", x + x),
            ("pad fill_", padded),
            ("pad copy_", x + x),
            ("avg_pool3d", padded + x),
            ("mul alpha", 2 * x),
            ("add k", 2 * x),
            ("pow beta", 2 * x),
            ("div x/d", 3 * x),
        ]
        for step, hbm in steps:
            self.add(block, f"{name}.{step}", "lrn", 0, hbm, detail=f"C={c} {h}x{w}")

    def stem_unit(self, unit: StemUnit, h: int, w: int) -> tuple[int, int]:
        """A stem conv unit's eager launches (``conv_unit``); returns (H', W')."""
        return self.conv_unit("stem", unit.name, unit.cin, unit.cout, unit.k, h, w, unit.stride, unit.pad)

    def stem_pool(self, unit: StemUnit, h: int, w: int) -> tuple[int, int]:
        """The max-pool after a stem unit, over its output [N, cout, h, w]; returns (H', W')."""
        return self.maxpool("stem", unit.pool, unit.cout, h, w, *STEM_POOL)

    def stem(self, size: int) -> tuple[int, int]:
        """The stem's launches on a ``size`` x ``size`` input, in forward order: conv1, maxpool1,
        [lrn1], conv2, conv3, [lrn2], maxpool2 (the LRNs in the paper variant only); returns the
        stem's output (H, W)."""
        conv1, conv2, conv3 = STEM_UNITS
        h, w = self.stem_pool(conv1, *self.stem_unit(conv1, size, size))
        if self.paper:
            self.lrn("stem", "lrn1", conv1.cout, h, w)
        h, w = self.stem_unit(conv3, *self.stem_unit(conv2, h, w))
        if self.paper:
            self.lrn("stem", "lrn2", conv3.cout, h, w)
        return self.stem_pool(conv3, h, w)

    def inception(self, block: str, spec: InceptionSpec, h: int, w: int) -> None:
        s = spec
        self.conv_unit(block, "branch1", s.in_channels, s.ch1x1, 1, h, w)
        self.conv_unit(block, "branch2.0", s.in_channels, s.ch3x3red, 1, h, w)
        self.conv_unit(block, "branch2.1", s.ch3x3red, s.ch3x3, s.k3, h, w, pad=s.k3 // 2)
        self.conv_unit(block, "branch3.0", s.in_channels, s.ch5x5red, 1, h, w)
        self.conv_unit(block, "branch3.1", s.ch5x5red, s.ch5x5, s.k5, h, w, pad=s.k5 // 2)
        self.maxpool(block, "branch4.0 maxpool", s.in_channels, h, w, 3, 1, 1)
        self.conv_unit(block, "branch4.1", s.in_channels, s.pool_proj, 1, h, w)
        y = self.act(s.out_channels, h, w)
        self.add(block, f"cat {s.ch1x1}+{s.ch3x3}+{s.ch5x5}+{s.pool_proj}", "cat", 0, 2 * y)


def network_launches(tracer: EagerTracer, variant: str, size: int, dtype: str, fused_block) -> list[Launch]:
    """Walk GoogLeNet's forward (eval) and record launches: the stem as ``tracer.stem`` traces it,
    the Inception blocks by ``fused_block`` for the fused network (None: eager blocks)."""
    t = tracer
    h, w = t.stem(size)
    for name in BLOCK_NAMES:
        spec = googlenet_spec(name, variant)
        if name == "4a":
            h, w = t.maxpool("pool3", "maxpool3", spec.in_channels, h, w, 3, 2)
        if name == "5a":
            k = 3 if t.paper else 2
            h, w = t.maxpool("pool4", "maxpool4", spec.in_channels, h, w, k, 2)
        if fused_block is None:
            t.inception(name, spec, h, w)
        else:
            t.launches.extend(fused_block(name, spec, h, w))
    c = googlenet_spec("5b", variant).out_channels
    t.add("head", f"avgpool adaptive 1x1 {h}x{w}", "avgpool", 0, t.act(c, h, w) + t.act(c, 1, 1))
    t.add("head", f"fc {c}>{NUM_CLASSES}", "linear", 2 * t.n * c * NUM_CLASSES,
          t.act(c, 1, 1) + (c * NUM_CLASSES + NUM_CLASSES) * t.e + t.act(NUM_CLASSES, 1, 1), "matmul")
    return t.launches


def check_network_args(variant: str, batch: int, size: int, dtype: str) -> None:
    """Raise ValueError for an unknown variant or dtype (full name), a batch < 1 or a size < 32."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPE_NAMES}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if size < 32:
        raise ValueError(f"size must be >= 32 (five stride-2 stages), got {size}")


def eager_launches(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16",
                   *, bias_add_separate: bool = True) -> list[Launch]:
    """The launches PyTorch eager issues for GoogLeNet inference (see this module's docstring).

    ``bias_add_separate``: paper variant only: count the conv bias as ATen's separate ``add_``
    kernel (True, what ATen's cuDNN path does) or as fused into the conv (False).
    """
    check_network_args(variant, batch, size, dtype)
    return network_launches(EagerTracer("eager", variant, batch, dtype, bias_add_separate), variant, size, dtype, None)
