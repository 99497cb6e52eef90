"""FusedInceptionFunction, the autograd.Function shim over the custom op: gradcheck in float64
and the kernels' forward and backward against the float64 block."""

from __future__ import annotations

import torch

import fused_inception as fi
from block_helpers import SMALL_NO_BN, assert_entry_point_matches_reference, random_input
from fused_inception.folding import params_of_reference_block
from fused_inception.models.randomize import random_block
from fused_inception.params import WEIGHT_FIELDS


def test_gradcheck_float64(gen, monkeypatch):
    """Analytical backward against numerical differences (float64 runs on the PyTorch path)."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    block = random_block(SMALL_NO_BN, gen)
    params = params_of_reference_block(block, torch.float64)
    tensors = {f: getattr(params, f).double().requires_grad_() for f in WEIGHT_FIELDS}
    params = fi.InceptionParams(**tensors, ch1x1=params.ch1x1, relu=True)
    x = random_input((1, 8, 4, 5), gen).requires_grad_()

    def f(x, *ts):
        p = fi.InceptionParams(**dict(zip(WEIGHT_FIELDS, ts)), ch1x1=params.ch1x1, relu=True)
        return fi.FusedInceptionFunction.apply(x, p)

    assert torch.autograd.gradcheck(f, (x, *tensors.values()), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_kernel_forward_and_backward_match_reference(gen):
    """fp32 through the kernels: output, input grad and every conv/BN parameter grad (BN folded)."""
    assert_entry_point_matches_reference(fi.FusedInceptionFunction.apply, gen)
