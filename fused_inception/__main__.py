"""``python -m fused_inception <command>``: demo (default), parity, bench, plan, compile-check.

The Triton interpreter must be chosen before triton is imported, and the commands want different
things on a machine without CUDA: ``parity`` checks the kernels themselves, so it turns the
interpreter on; ``bench`` times the PyTorch path and ``compile-check`` compiles real GPU code, so
they need it off. Hence the command name is read first, the environment set, and only then is
fused_inception imported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command -> (module, whether it wants the interpreter on a machine without CUDA)
COMMANDS = {
    "demo": ("fused_inception.demo", False),
    "parity": ("fused_inception.parity_report", True),
    "bench": ("fused_inception.bench", False),
    "plan": ("fused_inception.plan_report", False),
    "compile-check": ("fused_inception.compile_check", False),
}


def _cuda_available() -> bool:
    import torch  # torch does not import triton

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if command is None and argv and not argv[0].startswith("-"):
        print(f"unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if command is not None and "triton" not in sys.modules and not _cuda_available():
        if COMMANDS[command][1]:
            os.environ["TRITON_INTERPRET"] = "1"
        else:
            os.environ.pop("TRITON_INTERPRET", None)

    parser = argparse.ArgumentParser(prog="python -m fused_inception",
                                     description="Fused Triton kernels for GoogLeNet's Inception blocks.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    modules = {}
    for name, (module_name, _) in COMMANDS.items():
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


if __name__ == "__main__":
    sys.exit(main())
