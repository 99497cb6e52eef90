"""An Inception block whose BatchNorms use batch statistics, as one custom op that saves little.

Batch statistics split the fusion apart: every conv's whole output must exist before its BN can
normalise it, and the k x k conv needs the normalised reduction. So the forward runs the unfused
sequence (cuDNN convs, ``native_batch_norm``, ReLU, max-pool) under no_grad and writes each branch
into its slice of one output. Each of the six units has its own mode, as each nn.BatchNorm2d has:
``batch_stats[i]`` normalises with the batch's statistics (a BN in training), otherwise with the
running statistics (a BN in eval, or a FrozenBatchNorm2d); ``update[i]`` moves the running
statistics as nn.BatchNorm2d does in training with ``track_running_stats``. What it saves for
backward is only the block input, the ReLU mask of the output (one byte per element) and each
unit's normalising mean and inverse std (a few vectors); the backward recomputes the conv outputs
and runs each BN's backward with those saved statistics (so the recompute does not touch the
running statistics again).

Every one of the six conv units must have a BatchNorm; ``FusedInception`` runs other blocks with
batch statistics through their original modules.
"""

from __future__ import annotations

import torch

from .backward import conv_grads, relu_mask, relu_masked
from .folding import UNIT_NAMES
from .forward import output_memory_format
from .params import CAT_ORDER, branch_offsets

Tensor = torch.Tensor
aten = torch.ops.aten

# the unit that feeds each unit (None: the block input; "pool": the max-pooled input)
_FEEDS = {"branch1": None, "reduce3": None, "conv3": "reduce3", "reduce5": None, "conv5": "reduce5",
          "pool_proj": "pool"}


def running_average_factor(bn: torch.nn.BatchNorm2d) -> float:
    """The running-average factor of a training BN that moves its running statistics this call,
    counting the call in ``num_batches_tracked`` (nn.BatchNorm2d.forward's own rule: ``momentum``,
    or 1 / num_batches_tracked for ``momentum=None``); call it once per call."""
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            return 1.0 / float(bn.num_batches_tracked)
    return bn.momentum if bn.momentum is not None else 0.0


def _conv(inp: Tensor, w: Tensor, b: Tensor) -> Tensor:
    pad = w.shape[-1] // 2
    return aten.convolution(inp, w, b, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1)


def _normalise(z: Tensor, mean: Tensor, invstd: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    shape = (1, -1, 1, 1)
    return ((z - mean.view(shape)) * invstd.view(shape) * gamma.view(shape) + beta.view(shape)).to(z.dtype)


def _affine_backward(g_y: Tensor, z: Tensor, mean: Tensor, invstd: Tensor,
                     gamma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(grad z, grad gamma, grad beta) of y = (z - mean) * invstd * gamma + beta with fixed
    mean and invstd (in the statistics dtype, which this computes in): a BN normalising with its
    running statistics."""
    shape = (1, -1, 1, 1)
    acc = mean.dtype
    g = g_y.to(acc)
    xhat = (z.to(acc) - mean.view(shape)) * invstd.view(shape)
    g_z = (g * (invstd * gamma.to(acc)).view(shape)).to(z.dtype)
    return g_z, (g * xhat).sum((0, 2, 3)).to(gamma.dtype), g.sum((0, 2, 3)).to(gamma.dtype)


def _stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the saved normalising statistics for inputs of ``dtype``: float32, or float64
    for float64 inputs (whose backward would otherwise be only float32-exact)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _running_normalisers(running_mean: Tensor, running_var: Tensor, eps: float,
                         dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(mean, inverse std) in ``dtype`` of a BN that normalises with its running statistics."""
    return running_mean.to(dtype), torch.rsqrt(running_var.to(dtype) + eps)


# functional (autograd formulas need it): the updated running statistics are returned, and the
# caller copies them into the BN buffers of the units that update
@torch.library.custom_op("fused_inception::inception_block_bn_train", mutates_args=())
def inception_block_bn_train(
    x: Tensor,
    weights: list[Tensor], biases: list[Tensor], gammas: list[Tensor], betas: list[Tensor],
    running_means: list[Tensor], running_vars: list[Tensor], batch_stats: list[bool], update: list[bool],
    momentums: list[float], eps: list[float], relu: bool, cat_order: list[int],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Forward with per-unit BN modes. Lists follow fused_inception.folding.UNIT_NAMES; weights are
    [C_out, C_in, k, k], the rest [C_out]; ``batch_stats[i]``: unit i normalises with the batch's
    statistics, else with its running ones; ``update[i]`` (only with batch_stats[i]): its running
    statistics move by ``momentums[i]``, the factor nn.BatchNorm2d computes (1/num_batches_tracked
    when its momentum is None). Returns (out [N, C_total, H, W], the six normalising means and
    inverse stds (float32; float64 for a float64 x), the six running means and running variances,
    updated where ``update`` says), each concatenated over the units."""
    units = dict(zip(UNIT_NAMES, range(6)))
    widths = {name: weights[units[name]].shape[0] for name in CAT_ORDER}
    offsets = branch_offsets(widths, [CAT_ORDER[i] for i in cat_order])
    n, _, h, w = x.shape
    out = x.new_empty((n, sum(widths.values()), h, w)).contiguous(memory_format=output_memory_format(x))
    activations: dict[str | None, Tensor] = {None: x, "pool": aten.max_pool2d(x, [3, 3], [1, 1], [1, 1])}
    means, invstds, acc = [], [], _stats_dtype(x.dtype)
    new_means = [t.clone() for t in running_means]
    new_vars = [t.clone() for t in running_vars]
    for name in UNIT_NAMES:
        i = units[name]
        z = _conv(activations[_FEEDS[name]], weights[i], biases[i])
        if batch_stats[i]:
            # updates new_means[i] and new_vars[i] in place, as nn.BatchNorm2d updates its buffers;
            # None: batch statistics without touching any running statistics
            mean_i, var_i = (new_means[i], new_vars[i]) if update[i] else (None, None)
            y, mean, invstd = aten.native_batch_norm(z, gammas[i], betas[i], mean_i, var_i, True,
                                                     momentums[i], eps[i])
        else:
            y = aten.native_batch_norm(z, gammas[i], betas[i], running_means[i], running_vars[i], False,
                                       0.0, eps[i])[0]
            mean, invstd = _running_normalisers(running_means[i], running_vars[i], eps[i], acc)
        y = torch.relu(y) if relu else y
        means.append(mean.to(acc))
        invstds.append(invstd.to(acc))
        if name in offsets:
            out[:, offsets[name]:offsets[name] + widths[name]] = y
        else:
            activations[name] = y
    return out, torch.cat(means), torch.cat(invstds), torch.cat(new_means), torch.cat(new_vars)


@inception_block_bn_train.register_fake
def _(x, weights, biases, gammas, betas, running_means, running_vars, batch_stats, update, momentums, eps, relu,
      cat_order):
    channels = sum(weights[UNIT_NAMES.index(name)].shape[0] for name in CAT_ORDER)
    n, _, h, w = x.shape
    out = x.new_empty((n, channels, h, w)).contiguous(memory_format=output_memory_format(x))
    total = sum(wt.shape[0] for wt in weights)
    stats = x.new_empty((total,), dtype=_stats_dtype(x.dtype))
    running = running_means[0].new_empty((total,))
    return out, stats, stats.clone(), running, running.clone()


def _setup_context(ctx, inputs, output):
    x, weights, biases, gammas, betas, _, _, batch_stats, _, _, eps, relu, cat_order = inputs
    out, means, invstds, _, _ = output
    ctx.batch_stats, ctx.eps, ctx.relu, ctx.cat_order = batch_stats, eps, relu, cat_order
    ctx.save_for_backward(x, relu_mask(out, relu), means, invstds, *weights, *biases, *gammas, *betas)


def _backward(ctx, grad_out, *_grads_of_statistics):
    x, out_mask, means, invstds, *rest = ctx.saved_tensors
    weights, biases, gammas, betas = (rest[6 * j:6 * j + 6] for j in range(4))
    units = dict(zip(UNIT_NAMES, range(6)))
    widths = {name: weights[units[name]].shape[0] for name in CAT_ORDER}
    offsets = branch_offsets(widths, [CAT_ORDER[i] for i in ctx.cat_order])
    starts = [0]
    for wt in weights:
        starts.append(starts[-1] + wt.shape[0])
    stats = [(means[starts[i]:starts[i + 1]], invstds[starts[i]:starts[i + 1]]) for i in range(6)]

    pooled, indices = aten.max_pool2d_with_indices(x, [3, 3], [1, 1], [1, 1])
    inputs: dict[str | None, Tensor] = {None: x, "pool": pooled}
    pre_bn: dict[str, Tensor] = {}
    for name in ("reduce3", "reduce5"):  # recompute the reductions the k x k convs read
        i = units[name]
        z = _conv(x, weights[i], biases[i])
        pre_bn[name] = z
        y = _normalise(z, *stats[i], gammas[i], betas[i])
        inputs[name] = torch.relu(y) if ctx.relu else y

    grads_w, grads_b, grads_g, grads_beta = [None] * 6, [None] * 6, [None] * 6, [None] * 6
    grad_inputs: dict[str | None, Tensor] = {}

    def unit_backward(name: str, g_bn: Tensor) -> None:
        """g_bn: the gradient at the unit's BN output (after the ReLU mask)."""
        i = units[name]
        inp = inputs[_FEEDS[name]]
        z = pre_bn.get(name)
        if z is None:
            z = _conv(inp, weights[i], biases[i])
        if ctx.batch_stats[i]:
            # gamma in the saved statistics' dtype: for fp16/bf16 inputs that is the mixed-precision
            # form CPU and CUDA both accept (CPU refuses an fp16 gamma with float32 statistics)
            g_z, g_gamma, g_beta = aten.native_batch_norm_backward(
                g_bn, z, gammas[i].to(means.dtype), None, None, *stats[i], True, ctx.eps[i], [True, True, True])
            grads_g[i], grads_beta[i] = g_gamma.to(gammas[i].dtype), g_beta.to(betas[i].dtype)
        else:
            g_z, grads_g[i], grads_beta[i] = _affine_backward(g_bn, z, *stats[i], gammas[i])
        g_in, (grads_w[i], grads_b[i]) = conv_grads(g_z, inp, weights[i])
        grads_b[i] = grads_b[i].to(biases[i].dtype)
        key = _FEEDS[name]
        grad_inputs[key] = grad_inputs[key] + g_in if key in grad_inputs else g_in

    grad_out = grad_out.to(x.dtype)
    for name in CAT_ORDER:
        lo = offsets[name]
        g = grad_out[:, lo:lo + widths[name]]
        unit_backward(name, g if out_mask is None else g * out_mask[:, lo:lo + widths[name]])
    for name in ("reduce3", "reduce5"):
        unit_backward(name, relu_masked(grad_inputs.pop(name), inputs[name], ctx.relu))
    gx = grad_inputs[None] + aten.max_pool2d_with_indices_backward(
        grad_inputs["pool"], x, [3, 3], [1, 1], [1, 1], [1, 1], False, indices)
    return gx, grads_w, grads_b, grads_g, grads_beta, [None] * 6, [None] * 6, None, None, None, None, None, None


inception_block_bn_train.register_autograd(_backward, setup_context=_setup_context)
