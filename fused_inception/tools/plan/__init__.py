"""``python -m fused_inception plan``: a launch-by-launch cost model of GoogLeNet inference, eager
PyTorch vs the fused Inception blocks (shape arithmetic only: no GPU, no model built).

Reading order: ``gpus.py`` (datasheet peaks) -> ``shapes.py`` (conv/pool output sizes, the blocks'
input shapes) -> ``launches.py`` (one launch and what each of its figures counts) -> ``eager.py``
(the eager network's launches) -> ``fused.py`` (the fused blocks' launches and their configs, the
fused stem) -> ``roofline.py`` (time per launch and per network at datasheet peaks) ->
``model.py`` (per-block summaries, assumptions, ``build_plan``) -> ``latency.py`` (the latency
model: launch overhead, waves, L2) -> ``schedules.py`` (the fused kernels' schedules for it) ->
``kernelbench.py`` (its calibration against published timings) -> ``compare.py`` (eager vs fused
under it) -> ``command.py`` (the options and the tables).
"""
