"""One fused model serving inference from several threads at once gives correct outputs on every
call (see the thread-safety note of FusedInception)."""

from __future__ import annotations

import copy
import threading

import torch

import fused_inception as fi
from block_helpers import SMALL, random_input
from fused_inception.models.randomize import random_block
from fused_inception.tolerances import assert_close

THREADS, CALLS = 4, 3


def test_four_threads_share_one_fused_model(gen):
    """Four threads start together on an empty weight cache (they race to fill it), each with its
    own inputs: batch sizes and spatial sizes differ, one thread feeds channels_last, one runs under
    inference_mode. Every output against float64."""
    block = random_block(SMALL, gen)
    fused = fi.FusedInception.from_module(copy.deepcopy(block).float()).eval()
    inputs = [[random_input((t + 1, 8, 3 + t, 5 - t % 2), gen) for _ in range(CALLS)] for t in range(THREADS)]
    expected = [[block(x) for x in xs] for xs in inputs]
    results: dict[tuple[int, int], torch.Tensor] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def serve(t: int) -> None:
        try:
            start.wait()
            for call, x in enumerate(inputs[t]):
                x = x.float()
                if t == 1:
                    x = x.contiguous(memory_format=torch.channels_last)
                if t == 2:
                    with torch.inference_mode():
                        results[t, call] = fused(x)
                else:
                    with torch.no_grad():
                        results[t, call] = fused(x)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=serve, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a serving thread hung"
    assert not errors, errors
    assert len(results) == THREADS * CALLS
    for (t, call), out in sorted(results.items()):
        assert_close(out, expected[t][call], "float32", f"thread {t}, call {call}")
