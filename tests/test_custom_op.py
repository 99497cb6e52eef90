"""The custom ops: ``fused_inception::inception_block`` (its kernels' forward and backward against
the float64 block, and torch.library.opcheck) and ``fused_inception::inception_block_bn_train``
(opcheck)."""

from __future__ import annotations

import pytest
import torch

import fused_inception as fi
from block_helpers import SMALL, SMALL_NO_BN, assert_entry_point_matches_reference, random_input
from fused_inception.custom_op import inception_block, op_arguments
from fused_inception.folding import UNIT_NAMES, params_of_reference_block
from fused_inception.models.randomize import random_block


def test_kernel_forward_and_backward_match_reference(gen):
    """fp32 through the kernels: output, input grad and every conv/BN parameter grad (BN folded)."""
    assert_entry_point_matches_reference(lambda x, params: inception_block(x, *op_arguments(params)), gen)


def test_opcheck(gen):
    block = random_block(SMALL_NO_BN, gen)
    params = params_of_reference_block(block, torch.float32)
    x = random_input((1, 8, 3, 4), gen).float().requires_grad_()
    args = (x, *(t.clone().requires_grad_() if t.is_floating_point() else t for t in op_arguments(params)[:10]),
            *op_arguments(params)[10:])
    torch.library.opcheck(torch.ops.fused_inception.inception_block.default, args)


@pytest.mark.parametrize("batch_stats,update", [([True] * 6, [True] * 6),
                                                ([True, False, True, False, True, True], [True, False, False, False, True, True])],
                         ids=["all-training", "mixed-modes"])
# fp16: float32 statistics with fp16 tensors in the backward; float64: float64 statistics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_bn_train_opcheck(batch_stats, update, dtype, gen):
    block = random_block(SMALL, gen).to(dtype).train()
    fused = fi.FusedInception.from_module(block).train()
    units = fused.match.conv_units(fused)
    convs = [units[n][0] for n in UNIT_NAMES]
    bns = [units[n][1] for n in UNIT_NAMES]
    x = random_input((2, 8, 3, 4), gen).to(dtype).requires_grad_()
    args = (x, [c.weight for c in convs], [torch.zeros(c.out_channels, dtype=dtype) for c in convs],
            [b.weight for b in bns], [b.bias for b in bns], [b.running_mean for b in bns],
            [b.running_var for b in bns], batch_stats, update, [0.1] * 6, [b.eps for b in bns], True, [0, 1, 2, 3])
    torch.library.opcheck(torch.ops.fused_inception.inception_block_bn_train.default, args)
