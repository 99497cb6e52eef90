"""``python -m fused_inception compile-check``: every launchable kernel variant compiled ahead of
time for sm_80 and sm_90 without a GPU, with its registers, spills and shared memory: the blocks'
two kernels and the stem's epilogue (bn_relu_pool).

Reading order: ``aot.py`` (what compiling needs: the launchable variants, their signatures and
constexprs, the specializations GoogLeNet's blocks launch) -> ``compiling.py`` (compiling them, in
worker processes, and reading registers, spills, shared memory and instructions from the binaries;
resident warps per SM) -> ``report.py`` (the verdicts, the table and the summary) -> ``command.py``
(the options, which variants, the exit code).
"""
