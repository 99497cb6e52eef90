"""``python -m fused_inception demo``: the set-up check of the README.

Interface for the CLI dispatcher: ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args) -> int``
(0: every comparison passed; 1: one failed).

Two parts, each comparing with float64 (relative error ``||out - ref|| / ||ref||`` and max abs
error, fp32 tolerance; TF32's where PyTorch's conv rule allows TF32 on CUDA) and naming the path
that ran: "Triton kernels (CUDA)", "Triton interpreter (CPU)" or "aten tactic (CPU)".

1. Network: both reference GoogLeNets (paper and torchvision variants) with random weights and
   nonzero BN statistics, their per-stage shape table, ``fuse_with_report``'s report, and the fused
   logits against the same model in float64. Through a whole network every implementation's
   rounding error grows with depth, so, as in ``parity``, the logits are held to the larger of the
   dtype's tolerance and ``BASELINE_FACTOR`` times the unfused network's own error in the same
   dtype (printed). The fused blocks run their selected tactic (fuse_with_report's report names
   it): on CUDA the Triton kernels unless a tuned file records another tactic, on the CPU the aten
   tactic (the interpreter would take minutes for a 224x224 network).
2. Without CUDA, the Triton kernels themselves: block 3a of each variant (random weights, BN
   statistics and gamma of either sign, signed input, so zero padding of the reduced tensor and
   -inf padding of the max-pool both matter) on a small input through the Triton interpreter, a few
   seconds per block on two cores. The interpreter must be switched on (``TRITON_INTERPRET=1``)
   before triton is imported, and ``python -m fused_inception`` has imported it (through the
   package) before this module runs. So unless this process's kernels were built for the
   interpreter (the variable was set before Python started), this part runs in a fresh process
   started with ``TRITON_INTERPRET=1`` (``demo --kernels-only``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import subprocess
import sys
import time
from typing import Iterator

import torch

from fused_inception import forward
from fused_inception.models import format_shape_table, googlenet, randomize_, stage_shapes
from fused_inception.models.randomize import random_block
from fused_inception.module import FusedInception
from fused_inception.tolerances import compare, compare_with_baseline, tolerance_key
from fused_inception.tools.parity import kernels_interpreted
from fused_inception.patching import fuse_with_report
from fused_inception.spec import VARIANTS, googlenet_spec

DESCRIPTION = ("build both GoogLeNet variants, print the shape table, fuse them and compare the logits "
               "with float64; without a GPU, also run the Triton kernels on block 3a through the "
               "Triton interpreter")

BLOCK = "3a"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=224, help="network input height = width (default: 224)")
    parser.add_argument("--batch", type=int, default=1, help="network batch size (default: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=7,
                        help=f"block {BLOCK}'s input height = width in the kernel check (default: 7)")
    parser.add_argument("--block-batch", type=int, default=2,
                        help=f"block {BLOCK}'s batch in the kernel check (default: 2)")
    parser.add_argument("--kernels-only", action="store_true",
                        help=f"only the kernel check of block {BLOCK} (through the Triton interpreter "
                             "when there is no GPU)")


def path_label(x: torch.Tensor) -> str:
    """Where ``inception_forward`` sends ``x`` in this process, as the demo reports it."""
    if x.is_cuda:
        return "Triton kernels (CUDA)"
    if forward.uses_triton(x) and kernels_interpreted():
        return "Triton interpreter (CPU)"
    return "aten tactic (CPU)"


@contextlib.contextmanager
def interpreter_routing(on: bool) -> Iterator[None]:
    """Route CPU tensors to the interpreted kernels (on) or the aten tactic (off) for the duration:
    ``forward.uses_triton`` reads TRITON_INTERPRET at call time."""
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


def _tolerance_key(x: torch.Tensor) -> str:
    # TF32 dots on CUDA where PyTorch's conv rule allows them (its default): TF32's tolerance
    return tolerance_key(torch.float32, tf32=forward.runs_tf32(x.device.type, torch.float32))


def check_network(args: argparse.Namespace, device: str) -> bool:
    """Part 1; True when both variants' fused logits are within tolerance."""
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
    ok = True
    for variant in VARIANTS:
        # random weights and BN statistics: default inits leave BN an identity (see randomize_)
        model = randomize_(googlenet(variant=variant), gen).to(device).eval()
        print(f"\n== GoogLeNet, {variant} variant: {sum(p.numel() for p in model.parameters()):,} parameters")
        print(format_shape_table(stage_shapes(model, (args.batch, 3, args.size, args.size))))
        fused, report = fuse_with_report(model)
        print(report)
        with torch.no_grad(), interpreter_routing(False):
            out = fused(x)
            label = path_label(x)
            baseline = model(x)  # the unfused network in the same dtype
            ref = model.double()(x.double())
        key = _tolerance_key(x)
        result = compare_with_baseline(out, ref, baseline, key)
        print(f"unfused {variant} network in {key} vs float64 reference: rel {compare(baseline, ref, key).rel_error:.3e}")
        print(f"{variant} logits, input {tuple(x.shape)}: fused ({label}) vs float64 reference: {result}",
              flush=True)
        ok &= result.passed
    return ok


def check_block(args: argparse.Namespace, device: str) -> bool:
    """Part 2 in this process (CUDA, or kernels built for the interpreter); True when both variants'
    block outputs are within tolerance."""
    interpreted = device == "cpu"
    print(f"\n== The Triton kernels on block {BLOCK}"
          + (" through the Triton interpreter (one program at a time: a small input)" if interpreted else ""),
          flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    ok = True
    for variant in VARIANTS:
        reference = random_block(googlenet_spec(BLOCK, variant), gen)  # float64, eval
        fused = FusedInception.from_module(copy.deepcopy(reference).float()).to(device).eval()
        shape = (args.block_batch, reference.spec.in_channels, args.block_size, args.block_size)
        x64 = torch.randn(shape, generator=gen, dtype=torch.float64)
        x = x64.float().to(device)
        start = time.perf_counter()
        with torch.no_grad(), interpreter_routing(interpreted):
            out = fused(x)
            label = path_label(x)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            ref = reference(x64)
        result = compare(out, ref, _tolerance_key(x))
        print(f"{variant} block {BLOCK}, input {shape}: fused ({label}, {seconds:.1f} s) "
              f"vs float64 reference: {result}", flush=True)
        ok &= result.passed
    return ok


def _check_block_in_fresh_process(args: argparse.Namespace) -> bool:
    """Part 2 in a fresh process whose triton is imported with TRITON_INTERPRET=1."""
    print("\n(no GPU: the kernel check runs in a fresh process with TRITON_INTERPRET=1, so that triton "
          "builds the kernels for its interpreter)", flush=True)
    cmd = [sys.executable, "-m", "fused_inception", "demo", "--kernels-only", "--seed", str(args.seed),
           "--block-size", str(args.block_size), "--block-batch", str(args.block_batch)]
    return subprocess.call(cmd, env=dict(os.environ, TRITON_INTERPRET="1")) == 0


def run(args: argparse.Namespace) -> int:
    for name in ("size", "batch", "block_size", "block_batch"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ok = True
    if not args.kernels_only:
        ok &= check_network(args, device)
    if device == "cuda":
        if args.kernels_only:  # otherwise the network above has run the kernels already
            ok &= check_block(args, device)
    elif kernels_interpreted():
        ok &= check_block(args, device)
    else:
        ok &= _check_block_in_fresh_process(args)
    return 0 if ok else 1
