"""``python -m fused_inception bench``: eager, channels_last, torch.compile, CUDA graph and fused
GoogLeNet timed side by side.

Reading order: ``command.py`` (options, settings, ``run``) -> ``cases.py`` (what is timed: scopes,
modes, dtypes, methods, one case's inputs and prepared call) -> ``timing.py`` (how one method is
timed and sanity-checked) -> ``run.py`` (the run over every case and its report dict, merging
reports) -> ``report.py`` (text and markdown) -> ``plot.py`` (the PNG) -> ``steps.py``
(``benchmarks/gpu_check.sh``'s step-status table in a merged report).
"""
