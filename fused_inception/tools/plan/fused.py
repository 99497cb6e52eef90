"""The launches of the fused Inception blocks, of the fused stem and of the fused network.

Each Inception block is the four launches of ``fused_inception.forward._forward_triton``: branch 1
and the pool projection (one pointwise/pool kernel launched twice, ``IS_POOL``), then the reduce ->
k x k kernel for the 3x3 and the "5x5" branch. The torchvision variant's stem runs each conv unit
as its cuDNN conv, the eager launch, then one epilogue launch (kernels/bn_relu_pool.py) for its
BatchNorm, ReLU and the max-pool after it, where there is one (``FusedTracer``); the paper
variant's stem (LRN, no BatchNorm), the inter-stage pools and the head are the eager launches.
"""

from __future__ import annotations

from fused_inception.kernels.bn_relu_pool import BLOCK_C, BLOCK_P, NUM_WARPS, bn_relu_pool_grid
from fused_inception.kernels.configs import PointwiseConfig, ReduceConvConfig, config_name, tiles_for
from fused_inception.kernels.pointwise_pool import pool_tile_width, wide_pool_tiles
from fused_inception.kernels.reduce_conv import grid_for_sms
from fused_inception.kernels.tuned_configs import pick_pointwise_config, pick_reduce_conv_config
from fused_inception.spec import InceptionSpec
from fused_inception.tools.plan.eager import (BN_PARAMS_PER_CHANNEL, STEM_POOL, STEM_UNITS, EagerTracer, StemUnit,
                                              check_network_args, network_launches)
from fused_inception.tools.plan.launches import BIAS_BYTES, Launch, dtype_bytes
from fused_inception.tools.plan.shapes import cdiv, pool_out, round_up


def modelled_dot_precision(dtype: str, tf32: bool = True) -> str:
    """The ``input_precision`` of the fused kernels' dots, as ``fused_inception.forward.dot_precision`` picks it on a GPU:
    "tf32" for float32 when TF32 is allowed (``torch.backends.cudnn.allow_tf32``, PyTorch's default
    True), else "ieee"."""
    return "tf32" if dtype == "float32" and tf32 else "ieee"


def _run_pixels(m: int, block_m: int, off: int) -> int:
    """Input pixels the reduce phase loads, summed over the tiles: tile t covers the pixel run
    [t*BLOCK_M - OFF, (t+1)*BLOCK_M + OFF) of the flattened index, clipped to [0, M) (pixels
    outside the tensor are masked, not loaded)."""
    tiles = cdiv(m, block_m)
    total = tiles * (block_m + 2 * off)
    # clipped below 0: only the first tiles (t*BLOCK_M < OFF)
    for t in range(min(tiles, cdiv(off, block_m) + 1)):
        total -= max(0, off - t * block_m)
    # clipped at M: only the last tiles ((t+1)*BLOCK_M + OFF > M)
    t = tiles - 1
    while t >= 0 and (t + 1) * block_m + off > m:
        total -= (t + 1) * block_m + off - m
        t -= 1
    return total


# every GPU the model knows is a GH100 (sm_90): both kernels' aligned launches take a config's sm_90 tiles
MODELLED_ARCH = 90


def modelled_tiles(cfg: object, m: int, c: int, sms: int) -> object:
    """The tiles a reduce -> k x k or branch-1 launch over ``m`` pixels and ``c`` output channels
    runs as a FusedInception runs GoogLeNet's on an sm_90 GPU of ``sms`` SMs: its kernels get
    channels_last and every channel count is a multiple of 16, so the launch is aligned and takes
    the config's aligned tiles where those fill the SMs (kernels/configs.tiles_for). A config
    without aligned tiles (among them the kernels of commit d2e917c) keeps its own."""
    if not getattr(cfg, "aligned", ()):
        return cfg
    return tiles_for(cfg, m, c, MODELLED_ARCH, sms)


def config_label(cfg: object, tiles: object) -> str:
    """A config's shipped name, with "aligned" when the launch runs its aligned tiles."""
    return config_name(cfg) + (" aligned" if tiles is not cfg else "")


def modelled_pool_tiles(cfg: PointwiseConfig, pool_proj: int) -> tuple[int, bool]:
    """(pool tile width, taps clamped) of a pool launch as a FusedInception runs GoogLeNet's: its
    kernels get channels_last and every channel count is a multiple of 16, so the launch is
    aligned (kernels/pointwise_pool.aligned_channels_last)."""
    clamped = cfg.clamp_taps
    return pool_tile_width(cfg, clamped and wide_pool_tiles(cfg, pool_proj, aligned=True)), clamped


def _pointwise_part(spec: InceptionSpec, batch: int, h: int, w: int, e: int, cfg: object, pool: bool,
                    block_n: int, block_k: int, clamped: bool = False) -> dict:
    """Figures of one branch of the pointwise/pool kernel (branch 1, or the pool projection with
    ``pool``, its taps clamped into the image with ``clamped``) on ``block_n``-wide column tiles
    with K step ``block_k``: minimal HBM bytes, useful, executed and padded FLOPs, and the loads of
    its loops (x and weights, before subtracting the minimal reads)."""
    cin = spec.in_channels
    c = spec.pool_proj if pool else spec.ch1x1
    m = batch * h * w
    n_tiles = cdiv(c, block_n)
    m_tiles = cdiv(m, cfg.BLOCK_M)
    # x loads: every branch-1 column tile reads x once; every pool column tile reads its 9 taps:
    # masked taps outside the image are not loaded, (3H-2)(3W-2) pixels per image and channel;
    # clamped ones are (a pixel of the same window again), 9HW.
    px = (9 * h * w if clamped else (3 * h - 2) * (3 * w - 2)) if pool else h * w
    return dict(
        hbm=cin * c * e + c * BIAS_BYTES + m * c * e,  # without the read of x
        useful=2 * m * cin * c,
        exec_=2 * round_up(m, cfg.BLOCK_M) * cin * c,
        padded=2 * round_up(m, cfg.BLOCK_M) * round_up(cin, block_k) * n_tiles * block_n,
        x_loads=batch * cin * e * n_tiles * px,
        w_loads=m_tiles * cin * n_tiles * block_n * e,
        tiles=(m_tiles, n_tiles),
    )


def pointwise_pool_launches(block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                            cfg: PointwiseConfig | None = None, l2_capacity: float = 50e6, *,
                            tf32: bool = True, sms: int = 132) -> list[Launch]:
    """Launches 1 and 2: branch 1 and max-pool -> pool projection, each an implicit GEMM writing
    its channel slice (kernels/pointwise_pool.py: one kernel launched twice, IS_POOL).

    Branch-1 tiles are BLOCK_M x BLOCK_N with K step BLOCK_K (the config's aligned tiles where a
    launch on ``sms`` SMs takes them, ``modelled_tiles``), pool tiles BLOCK_NP wide (or
    BLOCK_NP_WIDE, as a channels_last launch takes them: a FusedInception hands the kernels
    channels_last) with K step BLOCK_KP; both grids run a pixel tile's column tiles side by side, so each launch reads x
    from HBM once. A config without BLOCK_NP is commit d2e917c's kernel: ONE launch for both
    branches, BLOCK_N-wide tiles and K step BLOCK_K for both, its 2-D grid sweeping all pixels for
    one column tile first. ``l2_capacity`` (bytes): that grid's pessimistic figure charges the
    per-column-tile input re-reads as HBM traffic when the input is larger than half of it.
    ``tf32``: picks the config with the dot precision (``modelled_dot_precision``) when ``cfg`` is
    not given.
    """
    precision = modelled_dot_precision(dtype, tf32)
    cfg = cfg or pick_pointwise_config(dtype, precision)
    e = dtype_bytes(dtype)
    cin, c1, cp = spec.in_channels, spec.ch1x1, spec.pool_proj
    x = batch * h * w * cin * e
    w_min = cin * (c1 + cp) * e
    if not hasattr(cfg, "BLOCK_NP"):
        b1 = _pointwise_part(spec, batch, h, w, e, cfg, False, cfg.BLOCK_N, cfg.BLOCK_K)
        bp = _pointwise_part(spec, batch, h, w, e, cfg, True, cfg.BLOCK_N, cfg.BLOCK_K)
        hbm = x + b1["hbm"] + bp["hbm"]
        reread = (b1["x_loads"] + bp["x_loads"] - x) + (b1["w_loads"] + bp["w_loads"] - w_min)
        # the pixel axis varies fastest: x comes back from HBM per column tile unless it stays in L2
        n_cols = b1["tiles"][1] + bp["tiles"][1]
        high = hbm + ((n_cols - 1) * x if x > l2_capacity / 2 else 0)
        return [Launch(
            "fused", block, f"pointwise_pool 1x1 {cin}>{c1} | maxpool3x3+1x1 {cin}>{cp}", "pointwise_pool",
            b1["useful"] + bp["useful"], hbm, math="conv", exec_flops=b1["exec_"] + bp["exec_"],
            padded_flops=b1["padded"] + bp["padded"], hbm_bytes_high=high, cache_reread_bytes=reread,
            detail=(f"{b1['tiles'][0]} pixel tiles x {b1['tiles'][1]}+{bp['tiles'][1]} column tiles, one launch, "
                    f"BLOCK_M/N/K {cfg.BLOCK_M}/{cfg.BLOCK_N}/{cfg.BLOCK_K} (d2e917c, {precision})"))]
    block_np, clamped = modelled_pool_tiles(cfg, cp)
    b1_tiles = modelled_tiles(cfg, batch * h * w, c1, sms)
    launches = []
    for pool, tiles, c, bn, bk, label in (
            (False, b1_tiles, c1, b1_tiles.BLOCK_N, b1_tiles.BLOCK_K, f"branch1 1x1 {cin}>{c1}"),
            (True, cfg, cp, block_np, cfg.BLOCK_KP, f"pool maxpool3x3+1x1 {cin}>{cp}")):
        part = _pointwise_part(spec, batch, h, w, e, tiles, pool, bn, bk, clamped and pool)
        hbm = x + part["hbm"]
        reread = (part["x_loads"] - x) + (part["w_loads"] - cin * c * e)
        m_tiles, n_tiles = part["tiles"]
        launches.append(Launch(
            "fused", block, f"pointwise_pool {label}", "pointwise_pool", part["useful"], hbm, math="conv",
            exec_flops=part["exec_"], padded_flops=part["padded"], cache_reread_bytes=reread,
            detail=(f"{m_tiles} pixel tiles x {n_tiles} column tiles, BLOCK_M/N/K {tiles.BLOCK_M}/{bn}/{bk} "
                    f"({config_label(cfg, tiles)}, {precision})")))
    return launches


def reduce_conv_grid(tiles: int, c: int, cfg: object, sms: int) -> tuple[int, int]:
    """(programs, n_split) of a reduce -> k x k launch on ``sms`` SMs, the rule of
    kernels/reduce_conv.grid_for_sms: ``cfg.programs_per_sm`` program slots per SM; when the
    tiles are fewer than the SMs, up to cdiv(c, BLOCK_N) programs share a tile (n_split), each
    taking every n_split-th block of output channels, unless ``cfg.split_columns`` is false. A
    config without ``programs_per_sm`` (the kernel of commit d2e917c) has two programs per SM and
    no split."""
    per_sm = getattr(cfg, "programs_per_sm", None)
    if per_sm is None:
        return max(1, min(tiles, 2 * sms)), 1
    return grid_for_sms(tiles, c, cfg, sms, per_sm)


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
    without it, the kernel of commit d2e917c). The tiles are ``cfg``'s aligned ones where the
    launch takes them (``modelled_tiles``).
    """
    precision = modelled_dot_precision(dtype, tf32)
    named = cfg or pick_reduce_conv_config(dtype, precision)
    m = batch * h * w
    cfg = modelled_tiles(named, m, c, sms)
    block_rk = getattr(cfg, "BLOCK_RK", cfg.BLOCK_R)
    e = dtype_bytes(dtype)
    x = m * cin * e
    hbm = x + cin * r * e + r * BIAS_BYTES + k * k * r * c * e + c * BIAS_BYTES + m * c * e
    tiles = cdiv(m, cfg.BLOCK_M)
    programs, n_split = reduce_conv_grid(tiles, c, cfg, sms)
    items = tiles * n_split
    pad = k // 2
    off = pad * w + pad
    halo_rows = cfg.halo_rows(k, w)
    r_pad = round_up(r, cfg.BLOCK_R)
    n_rk = cdiv(r, block_rk)  # reduced-channel blocks the conv loop visits per tap
    c_pad = round_up(c, cfg.BLOCK_N)
    cin_pad = round_up(cin, cfg.BLOCK_K)
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
    # (tap, BLOCK_RK block) iteration reads BLOCK_M x BLOCK_RK (masked lanes included), all from
    # L2 here: an upper bound for l1_scratch configs, whose re-reads the latency schedule
    # (schedules.reduce_conv_pipelined) serves from L1 where they fit
    l2 = (items * halo_rows * r_pad + tiles * cdiv(c, cfg.BLOCK_N) * k * k * n_rk * cfg.BLOCK_M * block_rk) * e
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
                f"halo rows, R_pad {r_pad}, {programs} programs ({config_label(named, cfg)}, {precision})"),
    )


def fused_block_launches(block: str, spec: InceptionSpec, batch: int, h: int, w: int, dtype: str,
                         sms: int = 132, l2_capacity: float = 50e6, *, tf32: bool = True) -> list[Launch]:
    """The four launches of one fused Inception block (forward._forward_triton: branch 1, pool
    projection, the two reduce -> k x k branches): the configs are
    picked for the dtype and the dot precision (``modelled_dot_precision(dtype, tf32)``)."""
    precision = modelled_dot_precision(dtype, tf32)
    pw_cfg = pick_pointwise_config(dtype, precision)
    cfg = pick_reduce_conv_config(dtype, precision)
    s = spec
    return [
        *pointwise_pool_launches(block, s, batch, h, w, dtype, pw_cfg, l2_capacity, tf32=tf32, sms=sms),
        reduce_conv_launch(block, "branch2", s.in_channels, s.ch3x3red, s.ch3x3, s.k3, batch, h, w, dtype, cfg, sms,
                           tf32=tf32),
        reduce_conv_launch(block, "branch3", s.in_channels, s.ch5x5red, s.ch5x5, s.k5, batch, h, w, dtype, cfg, sms,
                           tf32=tf32),
    ]


def taps_inside(size: int, k: int, stride: int, out: int) -> int:
    """Window taps inside an input of ``size`` along one axis, summed over the ``out`` windows of
    an unpadded k x k / ``stride`` pool (ceil_mode's last window may hang over the edge; its taps
    outside are masked, not loaded)."""
    return sum(min(o * stride + k, size) - o * stride for o in range(out))


class FusedTracer(EagerTracer):
    """The fused network's launches outside its Inception blocks: eager, except the torchvision
    variant's stem (see the module docstring)."""

    def stem(self, size: int) -> tuple[int, int]:
        """The stem on a ``size`` x ``size`` input: per conv unit of STEM_UNITS its conv launch and
        one ``stem_epilogue`` launch (torchvision); the eager stem for the paper variant, whose LRNs
        and bias-only convs the epilogue does not fuse. Returns the stem's output (H, W)."""
        if self.paper:
            return super().stem(size)
        h = w = size
        for unit in STEM_UNITS:
            h, w = self.stem_epilogue(unit, *self.conv_launch("stem", unit.name, unit.cin, unit.cout, unit.k, h, w,
                                                              unit.stride, unit.pad))
        return h, w

    def stem_epilogue(self, unit: StemUnit, h: int, w: int) -> tuple[int, int]:
        """One bn_relu_pool launch over the unit's conv output x [N, cout, h, w]: reads x once and
        the BN's parameters, writes relu(BN(x)) max-pooled by STEM_POOL (ceil_mode) where the unit
        has a pool, else unpooled, as [N, cout, H', W']; returns (H', W'). It replaces eager's BN,
        ReLU and max-pool launches. Its taps' loads beyond reading x once (a 3x3/2 window shares
        rows and columns with its neighbours) go to L1/L2: ``cache_reread_bytes``, not HBM. The grid
        is the launcher's: one program of NUM_WARPS warps per BLOCK_P output pixels x BLOCK_C
        channels."""
        c = unit.cout
        k, stride = STEM_POOL if unit.pool else (1, 1)
        ho, wo = pool_out(h, k, stride, 0, ceil_mode=True), pool_out(w, k, stride, 0, ceil_mode=True)
        x, y = self.act(c, h, w), self.act(c, ho, wo)
        taps = self.n * c * taps_inside(h, k, stride, ho) * taps_inside(w, k, stride, wo) * self.e
        programs, _ = bn_relu_pool_grid(self.n * ho * wo, c)
        op = f"bn_relu_pool {k}x{k}/{stride}" if unit.pool else "bn_relu"
        self.launches.append(Launch(
            self.network, "stem", f"{unit.name}.{op} {h}x{w}>{ho}x{wo}", "stem_epilogue", 0,
            x + y + BN_PARAMS_PER_CHANNEL * c * self.e, cache_reread_bytes=taps - x,
            detail=f"C={c}, {programs} programs of {BLOCK_P} px x {BLOCK_C} channels, {NUM_WARPS} warps"))
        return ho, wo


def stem_launches(tracer: EagerTracer, size: int) -> list[Launch]:
    """The stem's launches alone, as ``tracer`` traces them (eager, or fused with ``FusedTracer``)."""
    tracer.stem(size)
    return tracer.launches


def fused_stem_launches(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16",
                        *, bias_add_separate: bool = True) -> list[Launch]:
    """The fused network's stem launches (``FusedTracer.stem``), in forward order."""
    check_network_args(variant, batch, size, dtype)
    return stem_launches(FusedTracer("fused", variant, batch, dtype, bias_add_separate), size)


def stem_fusion(variant: str = "torchvision", batch: int = 256, size: int = 224,
                dtype: str = "bfloat16") -> tuple[list[Launch], list[Launch]]:
    """(the eager stem's launches the fused stem drops, the fused stem's launches eager has not),
    each in forward order; the conv launches are the same in both. torchvision: conv1.bn,
    conv1.relu_, maxpool1, conv2.bn, conv2.relu_, conv3.bn, conv3.relu_, maxpool2 against the three
    epilogues; paper: none."""
    check_network_args(variant, batch, size, dtype)
    eager = stem_launches(EagerTracer("eager", variant, batch, dtype, bias_add_separate=True), size)
    fused = fused_stem_launches(variant, batch, size, dtype)
    eager_names, fused_names = {l.name for l in eager}, {l.name for l in fused}
    return [l for l in eager if l.name not in fused_names], [l for l in fused if l.name not in eager_names]


def fused_launches(variant: str = "torchvision", batch: int = 256, size: int = 224, dtype: str = "bfloat16",
                   *, sms: int = 132, l2_capacity: float = 50e6, bias_add_separate: bool = True,
                   tf32: bool = True) -> list[Launch]:
    """The fused network: the stem as ``FusedTracer`` traces it (torchvision: conv + one epilogue
    launch per conv unit; paper: eager), eager pools and head, four fused launches per Inception block.

    ``sms`` sizes the reduce -> k x k persistent grid (``reduce_conv_grid``), hence the scratch;
    ``l2_capacity`` (bytes) only affects the pessimistic ``hbm_bytes_high``; ``tf32`` (float32
    only) picks the kernels' dot precision and with it their configs (``modelled_dot_precision``).
    """
    check_network_args(variant, batch, size, dtype)

    def block(name: str, spec: InceptionSpec, h: int, w: int) -> list[Launch]:
        return fused_block_launches(name, spec, batch, h, w, dtype, sms, l2_capacity, tf32=tf32)

    return network_launches(FusedTracer("fused", variant, batch, dtype, bias_add_separate), variant, size, dtype, block)
