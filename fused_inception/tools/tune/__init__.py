"""``python -m fused_inception tune``: picks, on this GPU, each kernel's config and each fused
block's tactic, and writes the GPU's tuned file (kernels/tuned/).

Reading order: ``command.py`` (options, the run, the file it writes; the config rows),
``tactic_rows.py`` (the tactic rows: triton / aten / modules per block shape, dtype, batch bucket
and mode), ``rules.py`` (what both share: the timer, the 3% margin, sticky device errors).
"""
