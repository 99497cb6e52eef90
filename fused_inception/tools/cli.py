"""``python -m fused_inception <command>``: the one entry point of demo, parity, bench, plan,
compile-check and tune.

Each command's module holds ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> exit
code``; this file holds the table of them and ``main``. Only the chosen command's module is imported
(``plan`` needs neither a GPU nor the kernels). The commands' internal subprocesses (compile-check's
compile workers, parity's interpreter re-runs) come back here too, through :func:`command_line`.

``python -m`` imports the package (and so triton) before this module runs, so the commands that
care about the Triton interpreter handle it themselves: without CUDA, ``parity`` reruns itself in
fresh processes with ``TRITON_INTERPRET=1`` (it checks the kernels), ``demo`` runs its kernel check
in such a process, ``bench`` keeps it off (CPU blocks run the CPU's tactics), and ``compile-check``
compiles in subprocesses with the interpreter off.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> the module with its DESCRIPTION, add_arguments(parser) and run(args)
COMMANDS = {
    "demo": "fused_inception.tools.demo",
    "parity": "fused_inception.tools.parity",
    "bench": "fused_inception.tools.bench.command",
    "plan": "fused_inception.tools.plan.command",
    "compile-check": "fused_inception.tools.compile_check.command",
    "tune": "fused_inception.tools.tune.command",
}


def command_line(command: str, *args: str) -> list[str]:
    """The argv that runs ``python -m fused_inception <command> <args>`` in a fresh interpreter
    (this one's executable)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    return [sys.executable, "-m", "fused_inception", command, *args]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command; its exit code (2: usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if command is None and argv and not argv[0].startswith("-"):
        print(f"unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2

    parser = argparse.ArgumentParser(prog="python -m fused_inception",
                                     description="Fused Triton kernels for GoogLeNet's Inception blocks.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    modules = {}
    for name, module_name in COMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name, help="(see its --help)")
            continue
        module = importlib.import_module(module_name)
        modules[name] = module
        sub_parser = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(modules[args.command].run(args) or 0)
