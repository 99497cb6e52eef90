"""CPU timing of implementation variants of the aten tactic against the eager torchvision block.

One GoogLeNet block (torchvision's Inception, BN in eval with random statistics) per case, batch 1
and 8 at its 224x224-input spatial size, NCHW and channels_last; every contender runs on the same
input, interleaved (round r runs the contenders in an order rotated by r), under torch.no_grad(),
in one process with torch.set_num_threads(2) (unless --threads). Prints, per case, each
contender's median time and its spread (min..max and the interquartile range) and its speed-up
over eager (eager median / its median).

    python benchmarks/aten_tactic_variants.py [--blocks 3a 4d 5b] [--batches 1 8] [--runs 21] [--training]
                                              [--only aten out-copy ...]

Contenders (all but eager compute the same folded block):

* ``eager``: torchvision's Inception in eval mode (six conv + BN + ReLU units, cat);
* ``aten``: fused_inception.aten_forward as committed (one 1x1 conv for the three input 1x1s,
  in-place ReLU, cat, conv layouts cached);
* ``aten-percall``: the same, rebuilding the conv layouts from InceptionParams in every call;
* ``three-1x1``: three separate 1x1 convs instead of one;
* ``out-copy``: a preallocated output in the input's format and copy_ of each branch into its
  slice instead of cat;
* ``relu-copy``: out of place ReLU (F.relu) instead of relu_.

``--training`` times a frozen-BN training step instead (forward and backward with respect to the
input and every parameter, BN in eval), outside no_grad: ``eager`` (the modules) against ``aten``
(BN folded in float32 on the autograd path in every call, straight into the conv layout by
aten_weights_from_units) and ``aten-via-params`` (the fold through InceptionParams' kernel layout
and back, params_from_units + aten_forward).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.models.googlenet import Inception as TorchvisionInception

from fused_inception.aten_forward import (AtenWeights, aten_forward, aten_inception_forward, aten_weights,
                                          aten_weights_from_units)
from fused_inception.folding import params_from_units
from fused_inception.forward import output_memory_format
from fused_inception.spec import GOOGLENET_BLOCKS


def eager_block(name: str, gen: torch.Generator) -> torch.nn.Module:
    """torchvision's Inception for GoogLeNet block ``name``, eval, random weights and BN statistics."""
    channels, _ = GOOGLENET_BLOCKS[name]
    block = TorchvisionInception(*channels).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    return block


def units(block: torch.nn.Module) -> dict:
    def unit(m):
        return (m.conv, m.bn)

    return {"branch1": unit(block.branch1), "reduce3": unit(block.branch2[0]), "conv3": unit(block.branch2[1]),
            "reduce5": unit(block.branch3[0]), "conv5": unit(block.branch3[1]), "pool_proj": unit(block.branch4[1])}


def three_1x1(x: torch.Tensor, w: AtenWeights) -> torch.Tensor:
    outs = [F.conv2d(x, wi, bi).relu_() for wi, bi in zip(w.w_input.split(w.split), w.b_input.split(w.split))]
    k3, k5 = w.w_conv3.shape[-1], w.w_conv5.shape[-1]
    res = [outs[0], F.conv2d(outs[1], w.w_conv3, w.b_conv3, padding=k3 // 2).relu_(),
           F.conv2d(outs[2], w.w_conv5, w.b_conv5, padding=k5 // 2).relu_(),
           F.conv2d(F.max_pool2d(x, 3, 1, 1), w.w_pool, w.b_pool).relu_()]
    return torch.cat(res, 1).contiguous(memory_format=output_memory_format(x))


def out_copy(x: torch.Tensor, w: AtenWeights) -> torch.Tensor:
    k3, k5 = w.w_conv3.shape[-1], w.w_conv5.shape[-1]
    b1, red3, red5 = F.conv2d(x, w.w_input, w.b_input).relu_().split(w.split, 1)
    res = [b1, F.conv2d(red3, w.w_conv3, w.b_conv3, padding=k3 // 2).relu_(),
           F.conv2d(red5, w.w_conv5, w.b_conv5, padding=k5 // 2).relu_(),
           F.conv2d(F.max_pool2d(x, 3, 1, 1), w.w_pool, w.b_pool).relu_()]
    n, _, h, wd = x.shape
    out = torch.empty((n, sum(r.shape[1] for r in res), h, wd), dtype=x.dtype,
                      memory_format=output_memory_format(x))
    start = 0
    for r in res:
        out[:, start:start + r.shape[1]].copy_(r)
        start += r.shape[1]
    return out


def relu_copy(x: torch.Tensor, w: AtenWeights) -> torch.Tensor:
    k3, k5 = w.w_conv3.shape[-1], w.w_conv5.shape[-1]
    b1, red3, red5 = F.relu(F.conv2d(x, w.w_input, w.b_input)).split(w.split, 1)
    res = [b1, F.relu(F.conv2d(red3, w.w_conv3, w.b_conv3, padding=k3 // 2)),
           F.relu(F.conv2d(red5, w.w_conv5, w.b_conv5, padding=k5 // 2)),
           F.relu(F.conv2d(F.max_pool2d(x, 3, 1, 1), w.w_pool, w.b_pool))]
    return torch.cat(res, 1).contiguous(memory_format=output_memory_format(x))


def training_contenders(block: torch.nn.Module, x: torch.Tensor) -> dict:
    """Frozen-BN training steps: the block's modules, and the aten tactic folding BN per call."""
    block.train()
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    x = x.detach().requires_grad_()
    grad = torch.randn_like(block(x))

    def step(forward) -> torch.Tensor:
        x.grad = None
        for p in block.parameters():
            p.grad = None
        out = forward()
        out.backward(grad)
        return out

    def aten_step() -> torch.Tensor:
        return aten_inception_forward(x, aten_weights_from_units(units(block), relu=True, dtype=torch.float32))

    def via_params_step() -> torch.Tensor:
        params = params_from_units(units(block), relu=True, dtype=torch.float32, fold_dtype=torch.float32)
        return aten_forward(x, params)

    return {"eager": lambda: step(lambda: block(x)), "aten": lambda: step(aten_step),
            "aten-via-params": lambda: step(via_params_step)}


def time_case(name: str, batch: int, channels_last: bool, runs: int, gen: torch.Generator,
              training: bool = False, only: list[str] | None = None) -> dict[str, list[float]]:
    block = eager_block(name, gen)
    channels, size = GOOGLENET_BLOCKS[name]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    block = block.to(memory_format=fmt)
    x = torch.randn((batch, channels[0], size, size), generator=gen).contiguous(memory_format=fmt)
    with torch.set_grad_enabled(training):
        params = params_from_units(units(block), relu=True, dtype=torch.float32)
        weights = aten_weights(params)
        contenders = training_contenders(block, x) if training else {
            "eager": lambda: block(x),
            "aten": lambda: aten_inception_forward(x, weights),
            "aten-percall": lambda: aten_forward(x, params),
            "three-1x1": lambda: three_1x1(x, weights),
            "out-copy": lambda: out_copy(x, weights),
            "relu-copy": lambda: relu_copy(x, weights),
        }
        if only:
            contenders = {label: fn for label, fn in contenders.items() if label == "eager" or label in only}
        ref = block(x).detach()
        for label, fn in contenders.items():
            got = fn().detach()
            err = float((got - ref).norm() / ref.norm())
            assert err < 1e-4, (label, err)
            assert got.is_contiguous(memory_format=fmt), label
            for _ in range(3):
                fn()
        times: dict[str, list[float]] = {label: [] for label in contenders}
        labels = list(contenders)
        for r in range(runs):
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                start = time.perf_counter()
                contenders[label]()
                times[label].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", nargs="+", default=["3a", "4d", "5b"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--training", action="store_true", help="time a frozen-BN training step")
    parser.add_argument("--only", nargs="+", help="time eager and only these contenders")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"{'frozen-BN training step' if args.training else 'inference'}: "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.runs} interleaved runs; "
          "ms: median [min..max] (IQR); x = eager median / median")
    for name in args.blocks:
        for batch in args.batches:
            for channels_last in (False, True):
                times = time_case(name, batch, channels_last, args.runs, gen, args.training, args.only)
                eager = statistics.median(times["eager"])
                fmt = "channels_last" if channels_last else "NCHW"
                print(f"{name} batch {batch} {fmt}")
                for label, ts in times.items():
                    ms = sorted(t * 1e3 for t in ts)
                    q = statistics.quantiles(ms, n=4)
                    med = statistics.median(ms)
                    print(f"  {label:13s} {med:8.3f} [{ms[0]:.3f}..{ms[-1]:.3f}] (IQR {q[2] - q[0]:.3f})"
                          f"  x{eager * 1e3 / med:.2f}")


if __name__ == "__main__":
    main()
