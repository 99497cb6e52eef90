"""A launch-by-launch cost model of GoogLeNet inference, eager PyTorch vs the fused Inception blocks.

This is shape arithmetic only: nothing is allocated and no model is built, so it runs in
milliseconds on any machine. It is our performance evidence where no GPU is at hand, so every
number below says what it assumes.

What is counted
---------------
* ``flops``: useful work, 2 x multiply-accumulates of the convolutions and the linear layer, the
  same count as docs/DESIGN.md §4 (1.50 GMAC per image for the torchvision variant). Elementwise,
  normalisation, pooling and copy launches count 0 FLOPs: they are memory-bound by a wide margin.
* ``exec_flops`` (fused launches): the MACs the fused kernels' loops execute over the pixels.
  Both kernels tile the flattened pixel index p = (n*H + h)*W + w, BLOCK_M consecutive pixels per
  tile (tiles cross row and image boundaries), so M = N*H*W is only rounded up to BLOCK_M (the
  last tile). The reduce -> k x k kernel recomputes the 1x1 reduction on each tile's run of pixels
  [p0 - OFF, p0 + BLOCK_M + OFF), OFF = PAD*W + PAD, PAD = k//2, rounded up to BLOCK_HALO rows
  (``ReduceConvConfig.halo_rows(k, W)``); run rows outside the tensor are masked, not skipped, so
  they count, once per work item (a tile and one of its column splits, see ``reduce_conv_grid``).
  ``padded_flops`` adds the channel padding of the ``tl.dot`` blocks (channel counts
  rounded up to BLOCK_K / BLOCK_R / BLOCK_RK / BLOCK_N): the work the tensor cores (or, for fp32 IEEE dots,
  the FMA units) are actually issued. Eager launches are counted at their useful FLOPs (cuDNN's own
  padding and tiling waste is unknown here, which favours eager).
* Configs: the kernels' pickers take the dtype and the dot precision (``dot_precision``): "tf32"
  for float32 when TF32 is allowed (``torch.backends.cudnn.allow_tf32``, PyTorch's default; the
  ``tf32`` flag here), else "ieee"; float32 IEEE gets the smaller "fma" reduce -> k x k config.
* ``hbm_bytes``: the minimal HBM traffic of the launch: every input read once, weights read once,
  every output written once (an in-place op reads and writes its tensor). Between launches every
  tensor is assumed to go through HBM.
* ``halo_bytes`` (reduce -> k x k launches): the extra input loads of the tile halos, beyond reading
  the input once: 2*OFF pixels per tile, less those outside the tensor, times C_in. Neighbouring
  tiles run at the same time, so these should mostly hit L2; they are kept out of ``hbm_bytes``
  and counted in ``hbm_bytes_high``.
* ``l2_bytes`` (reduce -> k x k launches): traffic to the per-program scratch (the reduced tensor on
  the tile's run of pixels): halo_rows x R_pad written once per work item; BLOCK_M x BLOCK_RK read
  per (tap, reduced-channel block) iteration of every BLOCK_N block of output channels.
  Its footprint (``scratch_bytes`` = programs x halo rows x padded reduced channels) is a few MB,
  far under the 50 MB L2, so it is counted as L2 traffic, not HBM.
* ``hbm_bytes_high``: a pessimistic HBM figure for the fused launches: adds the halo re-reads, one
  write-back of the scratch footprint and, when the block input is larger than half the L2 and the
  pointwise grid walks all of M for one column tile before the next (commit d2e917c's grid), the
  pointwise kernel's re-read of the input for every column tile. For eager launches it equals
  ``hbm_bytes``.
* ``cache_reread_bytes``: every load beyond the minimal that goes through L1/L2 (input re-reads per
  reduced-channel block, pool taps, halo, column tiles; weights reloaded per tile or per chunk). Not in
  this roofline (there is no datasheet L2 bandwidth); the latency model (``latency``) charges
  every load of the kernels' loops at an assumed L2 bandwidth.

Eager launches are those PyTorch eager issues for the reference model in eval mode (NCHW): per
conv unit conv (cuDNN), BatchNorm, in-place ReLU (torchvision variant) or conv, bias add, in-place
ReLU (paper variant: ATen's cuDNN path adds the bias in a separate ``add_`` kernel, see
aten/src/ATen/native/Convolution.cpp, ``ConvBackend::Cudnn``); pools; LRN as the 8
kernels of ``F.local_response_norm`` (mul, constant_pad_nd = fill + copy, avg_pool3d, mul, add,
pow, div); one ``torch.cat`` per block; adaptive average pool; linear (one cuBLASLt GEMM with the
bias in its epilogue). Dropout (identity in eval) and flatten (a view) launch nothing; the aux heads
do not run in eval; ``transform_input`` is off (the default). cuDNN layout transposes, if any, are
not modelled (they would only add to eager).

The fused network swaps only the Inception blocks: stem, inter-stage pools and head are the eager
launches above, and each block is the three launches of ``fused_inception.forward._forward_triton``.

Roofline: per launch, time = max(FLOPs / peak, bytes / HBM bandwidth) with datasheet peaks, summed
over launches, optionally plus a fixed per-launch overhead (an assumption, default 3 us). This is
a ceiling on throughput, not a prediction: real kernels reach a fraction of both peaks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from fused_inception.kernels.configs import PointwiseConfig, ReduceConvConfig, config_name
from fused_inception.kernels.tuned_configs import pick_pointwise_config, pick_reduce_conv_config
from fused_inception.kernels.reduce_conv import grid_for_slots
from fused_inception.spec import GOOGLENET_BLOCKS, InceptionSpec, googlenet_spec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
VARIANTS = ("torchvision", "paper")
BLOCK_NAMES = tuple(GOOGLENET_BLOCKS)
BIAS_BYTES = 4  # the fused kernels keep (folded) biases in float32
DEFAULT_LAUNCH_OVERHEAD_US = 3.0  # assumption: fixed cost per launch (ramp-up, tail, gap)
NUM_CLASSES = 1000


# --------------------------------------------------------------------------------------------
# GPUs (datasheet figures)


@dataclass(frozen=True)
class GPU:
    """Datasheet peaks of one GPU. FLOP/s are dense (no sparsity)."""

    name: str
    half_tflops: float  # dense bf16/fp16 tensor-core TFLOP/s
    tf32_tflops: float  # dense TF32 tensor-core TFLOP/s
    fp32_tflops: float  # fp32 non-tensor (CUDA-core) TFLOP/s
    hbm_tbps: float  # HBM bandwidth, TB/s (1e12 bytes/s)
    l2_mb: float  # L2 capacity, MB
    sms: int  # streaming multiprocessors (sizes the persistent grid)
    source: str = "NVIDIA datasheet"

    def peak_flops(self, dtype: str, math_kind: str, tf32: bool) -> float:
        """FLOP/s for a launch whose matrix work is ``math_kind`` ("conv", "matmul" or "none")."""
        if math_kind == "none":
            return self.fp32_tflops * 1e12
        if dtype in ("float16", "bfloat16"):
            return self.half_tflops * 1e12
        # fp32: convs (and the fused kernels, which follow the same rule) use TF32 when
        # torch.backends.cudnn.allow_tf32 is set; the linear layer follows the matmul precision,
        # "highest" (IEEE fp32) by default.
        if math_kind == "conv" and tf32:
            return self.tf32_tflops * 1e12
        return self.fp32_tflops * 1e12


# H100 SXM5 and H200 SXM are the same GH100 chip (132 SMs, 50 MB L2); H200 has faster, larger HBM.
H100_SXM = GPU("H100 SXM", half_tflops=989.4, tf32_tflops=494.7, fp32_tflops=66.9, hbm_tbps=3.35, l2_mb=50.0, sms=132)
H200_SXM = GPU("H200 SXM", half_tflops=989.4, tf32_tflops=494.7, fp32_tflops=66.9, hbm_tbps=4.8, l2_mb=50.0, sms=132)
GPUS = (H100_SXM, H200_SXM)
# Not in the roofline tables: the GPU of the published KernelBench timings the latency model is
# calibrated against (kernelbench.py). 114 SMs, HBM2e; PCIe power limit 350 W.
H100_PCIE = GPU("H100 PCIe", half_tflops=756.0, tf32_tflops=378.0, fp32_tflops=51.2, hbm_tbps=2.0, l2_mb=50.0, sms=114)


# --------------------------------------------------------------------------------------------
# Launches


@dataclass(frozen=True)
class Launch:
    """One kernel launch and its modelled cost. See the module docstring for each field."""

    network: str  # "eager" or "fused"
    block: str  # "stem", "3a".."5b", "pool3", "pool4", "head"
    name: str  # module-style name and shape, e.g. "branch2.1.conv 3x3 96>128"
    kind: str  # conv, bias_add, bn, relu, maxpool, lrn, avgpool, cat, linear, pointwise_pool, reduce_conv
    flops: int  # useful FLOPs (2 x MAC)
    hbm_bytes: int  # minimal HBM traffic
    math: str = "none"  # "conv", "matmul" or "none": which peak its FLOPs run at
    exec_flops: int = -1  # FLOPs the loops execute (halo runs, BLOCK_HALO/BLOCK_M rounding); -1: = flops
    padded_flops: int = -1  # exec_flops with channel padding to the dot blocks; -1: = exec_flops
    hbm_bytes_high: int = -1  # pessimistic HBM traffic; -1: = hbm_bytes
    halo_bytes: int = 0  # extra input loads of tile halos (cache level)
    l2_bytes: int = 0  # scratch traffic kept in L2
    scratch_bytes: int = 0  # scratch footprint
    cache_reread_bytes: int = 0  # all loads beyond the minimal (L1/L2 level)
    detail: str = ""  # shapes, config

    def __post_init__(self) -> None:
        if self.exec_flops < 0:
            object.__setattr__(self, "exec_flops", self.flops)
        if self.padded_flops < 0:
            object.__setattr__(self, "padded_flops", self.exec_flops)
        if self.hbm_bytes_high < 0:
            object.__setattr__(self, "hbm_bytes_high", self.hbm_bytes)

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Launch":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def conv_out(size: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output size of a convolution."""
    return (size + 2 * pad - k) // stride + 1


def pool_out(size: int, k: int, stride: int, pad: int = 0, ceil_mode: bool = False) -> int:
    """Output size of a max/avg pool, with PyTorch's ceil_mode rule (last window starts inside)."""
    if not ceil_mode:
        return (size + 2 * pad - k) // stride + 1
    out = _cdiv(size + 2 * pad - k, stride) + 1
    if (out - 1) * stride >= size + pad:
        out -= 1
    return out


# --------------------------------------------------------------------------------------------
# Eager network


class EagerTracer:
    """Accumulates the eager launches of one network: a tiny shape-tracking tracer."""

    def __init__(self, network: str, variant: str, batch: int, dtype: str, bias_add_separate: bool) -> None:
        self.network = network
        self.paper = variant == "paper"
        self.n = batch
        self.e = DTYPE_BYTES[dtype]
        self.bias_add_separate = bias_add_separate
        self.launches: list[Launch] = []

    def act(self, c: int, h: int, w: int) -> int:
        """Bytes of an activation [N, c, h, w]."""
        return self.n * c * h * w * self.e

    def add(self, block: str, name: str, kind: str, flops: int, hbm: int, math_kind: str = "none", detail: str = "") -> None:
        self.launches.append(Launch(self.network, block, name, kind, int(flops), int(hbm), math=math_kind, detail=detail))

    def conv_unit(self, block: str, name: str, cin: int, cout: int, k: int, h: int, w: int,
                  stride: int = 1, pad: int = 0) -> tuple[int, int]:
        """conv [+ bias add] + BN + ReLU (torchvision) or conv + bias + ReLU (paper); returns (H', W')."""
        ho, wo = conv_out(h, k, stride, pad), conv_out(w, k, stride, pad)
        x, y = self.act(cin, h, w), self.act(cout, ho, wo)
        wbytes = cout * cin * k * k * self.e
        macs = self.n * ho * wo * cout * cin * k * k
        shape = f"{k}x{k}/{stride} {cin}>{cout} {h}x{w}>{ho}x{wo}"
        if self.paper and not self.bias_add_separate:
            # counted as a conv with the bias in its epilogue
            self.add(block, f"{name}.conv {shape}", "conv", 2 * macs, x + wbytes + cout * self.e + y, "conv", shape)
        else:
            self.add(block, f"{name}.conv {shape}", "conv", 2 * macs, x + wbytes + y, "conv", shape)
        if self.paper:
            if self.bias_add_separate:
                self.add(block, f"{name}.bias add_", "bias_add", 0, 2 * y + cout * self.e)
        else:
            self.add(block, f"{name}.bn", "bn", 0, 2 * y + 4 * cout * self.e)
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


def _network(tracer: EagerTracer, variant: str, size: int, dtype: str, fused_block) -> list[Launch]:
    """Walk GoogLeNet's forward (eval) and record launches; ``fused_block`` handles Inception
    blocks for the fused network (None: eager blocks)."""
    t = tracer
    h = w = size
    h, w = t.conv_unit("stem", "conv1", 3, 64, 7, h, w, stride=2, pad=3)
    h, w = t.maxpool("stem", "maxpool1", 64, h, w, 3, 2)
    if t.paper:
        t.lrn("stem", "lrn1", 64, h, w)
    h, w = t.conv_unit("stem", "conv2", 64, 64, 1, h, w)
    h, w = t.conv_unit("stem", "conv3", 64, 192, 3, h, w, pad=1)
    if t.paper:
        t.lrn("stem", "lrn2", 192, h, w)
    h, w = t.maxpool("stem", "maxpool2", 192, h, w, 3, 2)
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


def _check(variant: str, batch: int, size: int, dtype: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {tuple(DTYPE_BYTES)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if size < 32:
        raise ValueError(f"size must be >= 32 (five stride-2 stages), got {size}")


def eager_launches(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16",
                   *, bias_add_separate: bool = True) -> list[Launch]:
    """The launches PyTorch eager issues for GoogLeNet inference (see the module docstring).

    ``bias_add_separate``: paper variant only: count the conv bias as ATen's separate ``add_``
    kernel (True, what ATen's cuDNN path does) or as fused into the conv (False).
    """
    _check(variant, batch, size, dtype)
    return _network(EagerTracer("eager", variant, batch, dtype, bias_add_separate), variant, size, dtype, None)


# --------------------------------------------------------------------------------------------
# Fused blocks


def dot_precision(dtype: str, tf32: bool = True) -> str:
    """The ``input_precision`` of the fused kernels' dots, as ``ops.dot_precision`` picks it on a GPU:
    "tf32" for float32 when TF32 is allowed (``torch.backends.cudnn.allow_tf32``, PyTorch's default
    True), else "ieee"."""
    return "tf32" if dtype == "float32" and tf32 else "ieee"


def _run_pixels(m: int, block_m: int, off: int) -> int:
    """Input pixels the reduce phase loads, summed over the tiles: tile t covers the pixel run
    [t*BLOCK_M - OFF, (t+1)*BLOCK_M + OFF) of the flattened index, clipped to [0, M) (pixels
    outside the tensor are masked, not loaded)."""
    tiles = _cdiv(m, block_m)
    total = tiles * (block_m + 2 * off)
    # clipped below 0: only the first tiles (t*BLOCK_M < OFF)
    for t in range(min(tiles, _cdiv(off, block_m) + 1)):
        total -= max(0, off - t * block_m)
    # clipped at M: only the last tiles ((t+1)*BLOCK_M + OFF > M)
    t = tiles - 1
    while t >= 0 and (t + 1) * block_m + off > m:
        total -= (t + 1) * block_m + off - m
        t -= 1
    return total


def pointwise_pool_launch(block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                          cfg: PointwiseConfig | None = None, l2_capacity: float = 50e6, *,
                          tf32: bool = True) -> Launch:
    """Launch 1: branch 1 and max-pool -> pool projection, one implicit GEMM writing both slices.

    Branch-1 column tiles are BLOCK_N wide with K step BLOCK_K, pool tiles BLOCK_NP wide with K step
    BLOCK_KP (BLOCK_N and BLOCK_K for configs without them, the kernel of commit d2e917c).
    ``l2_capacity`` (bytes): the pessimistic figure charges the per-column-tile input re-reads as
    HBM traffic only when the input is larger than half of it and the grid sweeps all pixels for
    one column tile first (commit d2e917c's 2-D grid; the current one-axis grid runs a pixel
    tile's column tiles side by side). ``tf32``: picks the config with the dot precision
    (``dot_precision``) when ``cfg`` is not given.
    """
    precision = dot_precision(dtype, tf32)
    cfg = cfg or pick_pointwise_config(dtype, precision)
    block_np = getattr(cfg, "BLOCK_NP", None)
    pixels_fastest = block_np is None
    block_np = block_np or cfg.BLOCK_N
    block_kp = getattr(cfg, "BLOCK_KP", cfg.BLOCK_K)
    e = DTYPE_BYTES[dtype]
    cin, c1, cp = spec.in_channels, spec.ch1x1, spec.pool_proj
    m = batch * h * w
    x = m * cin * e
    hbm = x + cin * (c1 + cp) * e + (c1 + cp) * BIAS_BYTES + m * (c1 + cp) * e
    m_pad = _round_up(m, cfg.BLOCK_M)
    n1, npool = _cdiv(c1, cfg.BLOCK_N), _cdiv(cp, block_np)
    useful = 2 * m * cin * (c1 + cp)
    exec_ = 2 * m_pad * cin * (c1 + cp)
    padded = 2 * m_pad * (_round_up(cin, cfg.BLOCK_K) * n1 * cfg.BLOCK_N
                          + _round_up(cin, block_kp) * npool * block_np)
    # x loads: every branch-1 column tile reads x once; every pool column tile reads its 9 taps
    # (taps outside the image are masked, not loaded): (3H-2)(3W-2) pixels per image and channel.
    x_loads = batch * cin * e * (n1 * h * w + npool * (3 * h - 2) * (3 * w - 2))
    m_tiles = _cdiv(m, cfg.BLOCK_M)
    w_loads = m_tiles * cin * (n1 * cfg.BLOCK_N + npool * block_np) * e
    reread = (x_loads - x) + (w_loads - cin * (c1 + cp) * e)
    # A grid whose axis 0 (pixels) varies fastest sweeps all of x for each column tile: x comes
    # back from HBM per column tile unless it stays in L2.
    high = hbm + ((n1 + npool - 1) * x if pixels_fastest and x > l2_capacity / 2 else 0)
    return Launch(
        "fused", block, f"pointwise_pool 1x1 {cin}>{c1} | maxpool3x3+1x1 {cin}>{cp}", "pointwise_pool",
        useful, hbm, math="conv", exec_flops=exec_, padded_flops=padded, hbm_bytes_high=high,
        cache_reread_bytes=reread,
        detail=(f"{m_tiles} pixel tiles x {n1}+{npool} column tiles, BLOCK_M/N/K {cfg.BLOCK_M}/{cfg.BLOCK_N}/"
                f"{cfg.BLOCK_K}, pool NP/KP {block_np}/{block_kp} ({config_name(cfg)}, {precision})"),
    )


def reduce_conv_grid(tiles: int, c: int, cfg: object, sms: int) -> tuple[int, int]:
    """(programs, n_split) of a reduce -> k x k launch on ``sms`` SMs, the rule of
    kernels/reduce_conv.reduce_conv_grid: ``cfg.programs_per_sm`` program slots per SM; when the
    tiles are fewer than the slots, up to cdiv(c, BLOCK_N) programs share a tile (n_split), each
    taking every n_split-th block of output channels, unless ``cfg.split_columns`` is false. A
    config without ``programs_per_sm`` (the kernel of commit d2e917c) has two programs per SM and
    no split."""
    per_sm = getattr(cfg, "programs_per_sm", None)
    if per_sm is None:
        return max(1, min(tiles, 2 * sms)), 1
    return grid_for_slots(tiles, c, cfg, sms * per_sm)


def reduce_conv_launch(block: str, branch: str, cin: int, r: int, c: int, k: int, batch: int, h: int, w: int,
                       dtype: str, cfg: ReduceConvConfig | None = None, sms: int = 132, *,
                       tf32: bool = True) -> Launch:
    """Launches 2/3: 1x1 reduce (cin -> r) fused with the k x k conv (r -> c), persistent grid.

    Tiles are BLOCK_M consecutive pixels of the flattened index p = (n*H + h)*W + w (crossing row
    and image boundaries); tile t reduces the run [p0 - OFF, p0 + BLOCK_M + OFF), OFF = PAD*W + PAD,
    rounded up to BLOCK_HALO rows (``ReduceConvConfig.halo_rows(k, W)``), into its program's
    scratch slot, then runs the k x k conv from it (kernels/reduce_conv.py). A work item is a tile
    and one of its ``n_split`` column splits (``reduce_conv_grid``); every item recomputes its
    tile's reduction. The conv's K step over reduced channels is ``BLOCK_RK`` (BLOCK_R for configs
    without it, the kernel of commit d2e917c).
    """
    precision = dot_precision(dtype, tf32)
    cfg = cfg or pick_reduce_conv_config(dtype, precision)
    block_rk = getattr(cfg, "BLOCK_RK", cfg.BLOCK_R)
    e = DTYPE_BYTES[dtype]
    m = batch * h * w
    x = m * cin * e
    hbm = x + cin * r * e + r * BIAS_BYTES + k * k * r * c * e + c * BIAS_BYTES + m * c * e
    tiles = _cdiv(m, cfg.BLOCK_M)
    programs, n_split = reduce_conv_grid(tiles, c, cfg, sms)
    items = tiles * n_split
    pad = k // 2
    off = pad * w + pad
    halo_rows = cfg.halo_rows(k, w)
    r_pad = _round_up(r, cfg.BLOCK_R)
    n_rk = _cdiv(r, block_rk)  # reduced-channel blocks the conv loop visits per tap
    c_pad = _round_up(c, cfg.BLOCK_N)
    cin_pad = _round_up(cin, cfg.BLOCK_K)
    useful = 2 * m * (cin * r + k * k * r * c)
    # the reduce dots run over all halo_rows rows (rows outside the tensor or past the run are
    # masked, not skipped) once per item; the conv dots over all BLOCK_M lanes (the last tile's
    # too), each output-channel block in one of the tile's items
    exec_ = 2 * (items * halo_rows * cin * r + tiles * cfg.BLOCK_M * k * k * r * c)
    padded = 2 * (items * halo_rows * cin_pad * r_pad + tiles * cfg.BLOCK_M * k * k * n_rk * block_rk * c_pad)
    # halo: input pixels loaded beyond each tile's own, 2*OFF per tile less what lies outside [0, M)
    # (the items sharing a tile run side by side and re-read it from L2: see x_loads)
    covered = _run_pixels(m, cfg.BLOCK_M, off)
    halo = (covered - m) * cin * e
    # scratch: written once per item (all halo_rows x R_pad); per output-channel block, each
    # (tap, BLOCK_RK block) iteration reads BLOCK_M x BLOCK_RK (masked lanes included)
    l2 = (items * halo_rows * r_pad + tiles * _cdiv(c, cfg.BLOCK_N) * k * k * n_rk * cfg.BLOCK_M * block_rk) * e
    scratch = programs * halo_rows * r_pad * e
    # x is reloaded for each BLOCK_R block of reduced channels, in every item. Weights: the
    # reduce weights (rows < C_in, columns < R) once per BLOCK_HALO chunk of every item; the
    # k x k weights (rows masked to R per tap) once per output-channel block of every tile.
    r_blocks = r_pad // cfg.BLOCK_R
    x_loads = n_split * r_blocks * covered * cin * e
    w_loads = (items * (halo_rows // cfg.BLOCK_HALO) * cin * r + tiles * k * k * r * c) * e
    reread = (x_loads - x) + (w_loads - (cin * r + k * k * r * c) * e)
    return Launch(
        "fused", block, f"reduce_conv {branch} 1x1 {cin}>{r} -> {k}x{k} {r}>{c}", "reduce_conv",
        useful, hbm, math="conv", exec_flops=exec_, padded_flops=padded,
        hbm_bytes_high=hbm + halo + scratch, halo_bytes=halo, l2_bytes=l2, scratch_bytes=scratch,
        cache_reread_bytes=reread,
        detail=(f"{tiles} tiles of {cfg.BLOCK_M} px x {n_split} split, run {cfg.BLOCK_M + 2 * off} -> {halo_rows} "
                f"halo rows, R_pad {r_pad}, {programs} programs ({config_name(cfg)}, {precision})"),
    )


def fused_block_launches(block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                         sms: int = 132, l2_capacity: float = 50e6, *, tf32: bool = True) -> list[Launch]:
    """The three launches of one fused Inception block (ops._forward_triton): the configs are
    picked for the dtype and the dot precision (``dot_precision(dtype, tf32)``)."""
    precision = dot_precision(dtype, tf32)
    pw_cfg = pick_pointwise_config(dtype, precision)
    cfg = pick_reduce_conv_config(dtype, precision)
    s = spec
    return [
        pointwise_pool_launch(block, s, batch, h, w, dtype, pw_cfg, l2_capacity, tf32=tf32),
        reduce_conv_launch(block, "branch2", s.in_channels, s.ch3x3red, s.ch3x3, s.k3, batch, h, w, dtype, cfg, sms,
                           tf32=tf32),
        reduce_conv_launch(block, "branch3", s.in_channels, s.ch5x5red, s.ch5x5, s.k5, batch, h, w, dtype, cfg, sms,
                           tf32=tf32),
    ]


def fused_launches(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16",
                   *, sms: int = 132, l2_capacity: float = 50e6, bias_add_separate: bool = True,
                   tf32: bool = True) -> list[Launch]:
    """The fused network: eager stem, pools and head; three fused launches per Inception block.

    ``sms`` sizes the reduce -> k x k persistent grid (``reduce_conv_grid``), hence the scratch;
    ``l2_capacity`` (bytes) only affects the pessimistic ``hbm_bytes_high``; ``tf32`` (float32
    only) picks the kernels' dot precision and with it their configs (``dot_precision``).
    """
    _check(variant, batch, size, dtype)

    def block(name: str, spec: InceptionSpec, h: int, w: int) -> list[Launch]:
        return fused_block_launches(name, spec, batch, h, w, dtype, sms, l2_capacity, tf32=tf32)

    return _network(EagerTracer("fused", variant, batch, dtype, bias_add_separate), variant, size, dtype, block)


# --------------------------------------------------------------------------------------------
# Roofline


@dataclass(frozen=True)
class Roofline:
    """Roofline estimate of one network on one GPU (times in seconds)."""

    gpu: str
    network: str
    launches: int
    flops: int  # the FLOPs the estimate charges (padded for fused launches)
    hbm_bytes: int
    compute_s: float  # sum of FLOPs / peak
    memory_s: float  # sum of bytes / bandwidth
    roofline_s: float  # sum over launches of max(compute, memory)
    overhead_s: float  # launches x per-launch overhead
    total_s: float  # roofline_s + overhead_s
    batch: int

    @property
    def img_per_s(self) -> float:
        return self.batch / self.total_s

    @property
    def img_per_s_no_overhead(self) -> float:
        return self.batch / self.roofline_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["img_per_s"] = self.img_per_s
        d["img_per_s_no_overhead"] = self.img_per_s_no_overhead
        return d


def launch_time(launch: Launch, gpu: GPU, dtype: str, tf32: bool = True, *, high: bool = False,
                l2_tbps: float | None = None) -> float:
    """max(padded FLOPs / peak, HBM bytes / bandwidth) of one launch, in seconds.

    ``l2_tbps``: also charge the scratch traffic (``l2_bytes``) at this L2 bandwidth (TB/s), an
    assumption: there is no datasheet figure.
    """
    nbytes = launch.hbm_bytes_high if high else launch.hbm_bytes
    t_mem = nbytes / (gpu.hbm_tbps * 1e12)
    t_flop = launch.padded_flops / gpu.peak_flops(dtype, launch.math, tf32) if launch.padded_flops else 0.0
    t_l2 = launch.l2_bytes / (l2_tbps * 1e12) if l2_tbps else 0.0
    return max(t_mem, t_flop, t_l2)


def roofline(launches: list[Launch], gpu: GPU, dtype: str, batch: int, *, tf32: bool = True,
             launch_overhead_us: float = DEFAULT_LAUNCH_OVERHEAD_US, high: bool = False,
             l2_tbps: float | None = None) -> Roofline:
    """Sum the per-launch roofline times of ``launches`` (one network) on ``gpu``.

    ``high``: charge ``hbm_bytes_high`` instead of the minimal ``hbm_bytes``; ``l2_tbps``: also
    charge the scratch L2 traffic at this assumed bandwidth (see ``launch_time``).
    """
    compute = sum(l.padded_flops / gpu.peak_flops(dtype, l.math, tf32) for l in launches if l.padded_flops)
    nbytes = sum(l.hbm_bytes_high if high else l.hbm_bytes for l in launches)
    memory = nbytes / (gpu.hbm_tbps * 1e12)
    bound = sum(launch_time(l, gpu, dtype, tf32, high=high, l2_tbps=l2_tbps) for l in launches)
    overhead = len(launches) * launch_overhead_us * 1e-6
    network = launches[0].network if launches else ""
    return Roofline(gpu.name, network, len(launches), sum(l.padded_flops for l in launches), nbytes,
                    compute, memory, bound, overhead, bound + overhead, batch)


# --------------------------------------------------------------------------------------------
# Summaries


@dataclass(frozen=True)
class BlockSummary:
    """Eager vs fused cost of one group of launches (an Inception block, or stem/pools/head)."""

    block: str
    shape: str  # "HxW Cin>Cout" for Inception blocks
    input_bytes: int  # size of the block's input activation
    mmac_per_image: float  # useful MACs per image, millions
    eager_launches: int
    fused_launches: int
    eager_hbm_bytes: int
    fused_hbm_bytes: int
    fused_hbm_bytes_high: int
    useful_flops: int
    fused_exec_flops: int
    fused_padded_flops: int
    halo_bytes: int
    l2_bytes: int
    scratch_bytes: int  # largest scratch footprint of the block's launches

    @property
    def bytes_ratio(self) -> float:
        return self.eager_hbm_bytes / self.fused_hbm_bytes if self.fused_hbm_bytes else float("nan")

    @property
    def exec_overhead(self) -> float:
        return self.fused_exec_flops / self.useful_flops - 1 if self.useful_flops else 0.0

    @property
    def padded_overhead(self) -> float:
        return self.fused_padded_flops / self.useful_flops - 1 if self.useful_flops else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(bytes_ratio=self.bytes_ratio, exec_overhead=self.exec_overhead, padded_overhead=self.padded_overhead)
        return d


GROUP_ORDER = ("stem", "3a", "3b", "pool3", "4a", "4b", "4c", "4d", "4e", "pool4", "5a", "5b", "head")


def block_summaries(eager: list[Launch], fused: list[Launch], variant: str, batch: int, size: int,
                    dtype: str) -> list[BlockSummary]:
    """One row per launch group, in forward order."""
    shapes = block_shapes(variant, size)
    e = DTYPE_BYTES[dtype]
    rows = []
    for group in GROUP_ORDER:
        el = [l for l in eager if l.block == group]
        fl = [l for l in fused if l.block == group]
        if not el and not fl:
            continue
        if group in shapes:
            spec, h, w = shapes[group]
            shape = f"{h}x{w} {spec.in_channels}>{spec.out_channels}"
            in_bytes = batch * spec.in_channels * h * w * e
        else:
            shape, in_bytes = "", 0
        useful = sum(l.flops for l in el)
        rows.append(BlockSummary(
            group, shape, in_bytes, useful / 2 / batch / 1e6, len(el), len(fl),
            sum(l.hbm_bytes for l in el), sum(l.hbm_bytes for l in fl), sum(l.hbm_bytes_high for l in fl),
            useful, sum(l.exec_flops for l in fl), sum(l.padded_flops for l in fl),
            sum(l.halo_bytes for l in fl), sum(l.l2_bytes for l in fl), max((l.scratch_bytes for l in fl), default=0),
        ))
    return rows


def block_shapes(variant: str, size: int = 224) -> dict[str, tuple[InceptionSpec, int, int]]:
    """(spec, H, W) of each Inception block's input for a square input of ``size``."""
    h = conv_out(size, 7, 2, 3)
    h = pool_out(h, 3, 2, 0, True)
    h = conv_out(conv_out(h, 1), 3, 1, 1)
    h = pool_out(h, 3, 2, 0, True)
    out = {}
    for name in BLOCK_NAMES:
        if name == "4a":
            h = pool_out(h, 3, 2, 0, True)
        if name == "5a":
            h = pool_out(h, 3 if variant == "paper" else 2, 2, 0, True)
        out[name] = (googlenet_spec(name, variant), h, h)
    return out


@dataclass
class Plan:
    """Everything ``python -m fused_inception plan`` reports."""

    variant: str
    batch: int
    size: int
    dtype: str
    tf32: bool
    launch_overhead_us: float
    l2_tbps: float | None
    eager: list[Launch]
    fused: list[Launch]
    blocks: list[BlockSummary]
    rooflines: list[Roofline]  # per GPU: eager, fused (minimal bytes), "fused-high" (hbm_bytes_high)
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        totals = {net: _totals(ls) for net, ls in (("eager", self.eager), ("fused", self.fused))}
        return {
            "config": {"variant": self.variant, "batch": self.batch, "size": self.size, "dtype": self.dtype,
                       "tf32": self.tf32, "input_precision": dot_precision(self.dtype, self.tf32),
                       "launch_overhead_us": self.launch_overhead_us,
                       "l2_tbps": self.l2_tbps},
            "gpus": [asdict(g) for g in GPUS],
            "assumptions": list(self.assumptions),
            "totals": totals,
            "blocks": [b.to_dict() for b in self.blocks],
            "roofline": [dict(r.to_dict(), bytes_model="high" if r.network == "fused-high" else "minimal")
                         for r in self.rooflines],
            "launches": {"eager": [l.to_dict() for l in self.eager], "fused": [l.to_dict() for l in self.fused]},
        }


def _totals(launches: list[Launch]) -> dict:
    return {
        "launches": len(launches),
        "flops": sum(l.flops for l in launches),
        "exec_flops": sum(l.exec_flops for l in launches),
        "padded_flops": sum(l.padded_flops for l in launches),
        "hbm_bytes": sum(l.hbm_bytes for l in launches),
        "hbm_bytes_high": sum(l.hbm_bytes_high for l in launches),
        "halo_bytes": sum(l.halo_bytes for l in launches),
        "l2_bytes": sum(l.l2_bytes for l in launches),
        "cache_reread_bytes": sum(l.cache_reread_bytes for l in launches),
    }


ASSUMPTIONS = [
    "Inference: model.eval(), under torch.no_grad() / inference_mode, model and input converted "
    "to the dtype (no autocast), NCHW. The fused blocks then use their cached folded weights: 3 "
    "launches per block. (With autograd enabled, FusedInception re-folds BN every forward, adding "
    "small launches not counted here; autocast would add weight casts to both networks.)",
    "Peaks are NVIDIA datasheet figures, dense (no sparsity): H100 SXM and H200 SXM 989.4 TFLOP/s "
    "bf16/fp16, 494.7 TF32, 66.9 fp32 (non-tensor); HBM 3.35 TB/s (H100, HBM3) and 4.8 TB/s "
    "(H200, HBM3e); 50 MB L2 and 132 SMs (H100 figures; the H200 is the same GH100 chip with "
    "faster, larger memory). Real kernels reach a fraction "
    "of both: the estimate is a ceiling on throughput, not a prediction.",
    "Per launch: time = max(FLOPs / peak, HBM bytes / bandwidth); network time = sum over launches "
    "(no overlap between launches), plus a fixed per-launch overhead (an assumption; 0 gives the "
    "pure roofline).",
    "FLOPs = 2 x MAC of convs and the linear layer; elementwise, BN, pool, LRN and cat launches "
    "count 0 FLOPs and are charged bytes only. Fused launches are charged their padded FLOPs "
    "(halo recompute over each tile's pixel run rounded up to BLOCK_HALO, the last tile's BLOCK_M "
    "rounding and channel padding to the dot blocks); eager "
    "convs their useful FLOPs (cuDNN's own waste is unknown here, which favours eager).",
    "Minimal HBM bytes: every launch reads its inputs and weights once and writes its outputs "
    "once; between launches every tensor goes through HBM. At batch 256 bf16 the 14x14 and 7x7 "
    "block inputs are 21-53 MB and many branch intermediates a few MB, against 50 MB of L2, so "
    "some eager round trips may be served from L2: the eager byte counts are an upper bound there.",
    "Fused: the 9 max-pool taps and the per-channel-block input re-reads hit L1/L2; tile halos are "
    "counted once in hbm_bytes and their extra loads separately (halo_bytes); the per-program "
    "scratch of the reduce -> kxk kernel is L2 traffic (l2_bytes; footprint scratch_bytes, "
    "programs and column splits as kernels/reduce_conv.py's grid on 132 SMs). 'fused (high)' charges as HBM the halo re-reads, one "
    "scratch write-back and, when the block input exceeds half the L2 and the pointwise grid sweeps "
    "all pixels for one column tile first (commit d2e917c's grid), its input re-read per column tile.",
    "Eager launches follow PyTorch eager on CUDA in eval, NCHW: conv unit = cuDNN conv + BN + "
    "in-place ReLU (torchvision) or cuDNN conv + bias add_ + in-place ReLU (paper: ATen adds the "
    "conv bias in a separate kernel); LRN = the 8 kernels of F.local_response_norm; cat = 1 "
    "launch per block; dropout and flatten launch nothing; aux heads do not run in eval; linear = "
    "1 cuBLASLt GEMM with bias epilogue. cuDNN layout transposes and workspace traffic are not "
    "modelled.",
    "fp32: convs and the fused kernels run at the TF32 peak when tf32 is on (PyTorch's default "
    "torch.backends.cudnn.allow_tf32 = True, which the fused kernels follow: input_precision "
    "'tf32', 'mma' configs), else at the fp32 non-tensor peak (IEEE dots, 'fma' reduce -> kxk "
    "config); the linear layer runs at the fp32 non-tensor peak (default matmul "
    "precision 'highest').",
    "Not in the roofline unless an L2 bandwidth is given (there is no datasheet figure): the "
    "scratch L2 traffic (l2_bytes); never in it: the other L1/L2 re-reads (cache_reread_bytes: "
    "halo, per-channel-block input and per-tile weight reloads) and the CPU-side launch cost of "
    "Python eager.",
]


def build_plan(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16", *,
               tf32: bool = True, launch_overhead_us: float = DEFAULT_LAUNCH_OVERHEAD_US,
               l2_tbps: float | None = None, bias_add_separate: bool = True) -> Plan:
    """Eager and fused launches, per-block summaries and the H100/H200 rooflines.

    ``l2_tbps``: charge the fused kernels' scratch L2 traffic at this assumed bandwidth (default:
    not charged). ``bias_add_separate``: see ``eager_launches``.
    """
    eager = eager_launches(variant, batch, size, dtype, bias_add_separate=bias_add_separate)
    rooflines = []
    fused_by_gpu = {}
    for gpu in GPUS:
        fused = fused_by_gpu.setdefault((gpu.sms, gpu.l2_mb), fused_launches(
            variant, batch, size, dtype, sms=gpu.sms, l2_capacity=gpu.l2_mb * 1e6,
            bias_add_separate=bias_add_separate, tf32=tf32))
        kw = dict(tf32=tf32, launch_overhead_us=launch_overhead_us, l2_tbps=l2_tbps)
        rooflines.append(roofline(eager, gpu, dtype, batch, **kw))
        rooflines.append(roofline(fused, gpu, dtype, batch, **kw))
        high = roofline(fused, gpu, dtype, batch, high=True, **kw)
        rooflines.append(Roofline(**{**asdict(high), "network": "fused-high"}))
    fused = fused_by_gpu[(GPUS[0].sms, GPUS[0].l2_mb)]  # H100 and H200 are the same chip
    blocks = block_summaries(eager, fused, variant, batch, size, dtype)
    return Plan(variant, batch, size, dtype, tf32, launch_overhead_us, l2_tbps, eager, fused, blocks, rooflines,
                list(ASSUMPTIONS))


__all__ = [
    "ASSUMPTIONS",
    "BlockSummary",
    "EagerTracer",
    "GPU",
    "GPUS",
    "H100_PCIE",
    "H100_SXM",
    "H200_SXM",
    "Launch",
    "Plan",
    "Roofline",
    "block_shapes",
    "block_summaries",
    "build_plan",
    "dot_precision",
    "eager_launches",
    "fused_block_launches",
    "fused_launches",
    "launch_time",
    "reduce_conv_grid",
    "roofline",
]
