"""The commands of ``python -m fused_inception``: clients of the library, which never imports them.

Reading order:

* ``cli.py``: the one entry point, the table of commands (``demo``, ``parity``, ``bench``, ``plan``,
  ``compile-check``, ``tune``) and ``main``; each command's module holds ``DESCRIPTION``,
  ``add_arguments(parser)`` and ``run(args) -> exit code``.
* ``demo.py``: the README's set-up check (the fused network and one block against eager).
* ``parity.py``: error tables of the fused blocks and network against a float64 reference.
* ``bench/``: timings of eager, torch.compile, CUDA graphs and the fused blocks.
* ``plan/``: the launch-by-launch cost model (shape arithmetic, no GPU).
* ``compile_check/``: ahead-of-time compilation of every launchable kernel variant for sm_80/sm_90.
* ``tune/``: picks each kernel's config and each block's tactic on this GPU and writes its tuned file.
* Shared by the commands: ``environment.py`` (the environment block of the reports),
  ``files.py`` (output files written whole), ``tables.py`` (text/markdown tables, option lists).
"""
