"""``python -m fused_inception demo``: build both reference GoogLeNets, print their per-stage shape
table, swap in the fused blocks with ``fuse()``, and compare the fused logits with the reference.

On a machine without CUDA the fused blocks run their PyTorch path (the kernels need a GPU or the
Triton interpreter; ``python -m fused_inception parity`` checks the kernels themselves).
"""

from __future__ import annotations

import argparse

import torch

from . import ops
from .models import format_shape_table, googlenet, randomize_, stage_shapes
from .parity import compare, tolerance_key
from .patching import fuse_with_report

DESCRIPTION = "build both GoogLeNet variants, print the shape table, fuse them and compare logits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=224, help="input height = width (default: 224)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    gen = torch.Generator().manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
    path = "Triton kernels" if ops.uses_triton(x) else "PyTorch path (no GPU, interpreter off)"
    failed = False
    for variant in ("paper", "torchvision"):
        # random weights and BN statistics: default inits leave BN an identity (see randomize_)
        model = randomize_(googlenet(variant=variant), gen).to(device).eval()
        print(f"\n== GoogLeNet, {variant} variant: {sum(p.numel() for p in model.parameters()):,} parameters")
        print(format_shape_table(stage_shapes(model, (args.batch, 3, args.size, args.size))))
        fused, report = fuse_with_report(model)
        print(report)
        with torch.no_grad():
            ref = model.double()(x.double())
            out = fused(x)
        # TF32 convs (PyTorch's default on a GPU) in the stem and the kernels: TF32's tolerance
        tf32 = x.is_cuda and ops.cudnn_conv_allows_tf32()
        result = compare(out, ref, tolerance_key(torch.float32, tf32=tf32))
        failed |= not result.passed
        print(f"fused ({path}) vs float64 reference logits: {result}")
    return 1 if failed else 0
