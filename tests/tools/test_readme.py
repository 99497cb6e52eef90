"""The README's newcomer path: its set-up commands install only the base dependencies, and its first
code block needs nothing else, runs, and prints what its comments say it prints.

The block runs in a fresh Python process without TRITON_INTERPRET (as in a newcomer's shell), so on
a machine without CUDA the fused blocks take their PyTorch path, as the README says.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

from fused_inception.tools.cli import COMMANDS

README = Path(__file__).resolve().parents[2] / "README.md"
DIST = "fused-inception"


def _fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def first_python_block() -> str:
    blocks = _fenced_blocks("python")
    assert blocks, "README.md has no ```python block"
    return blocks[0]


def setup_commands() -> list[str]:
    """The commands of the README's first ```bash block (the set-up line), split at '&&'."""
    blocks = _fenced_blocks("bash")
    assert blocks, "README.md has no ```bash block"
    return [c.strip() for c in blocks[0].strip().split("&&")]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def base_dependencies() -> set[str]:
    """Distribution names `pip install .` installs with the package: its requirements without an
    extra marker (from the installed metadata, which `pip install -e` wrote from pyproject.toml)."""
    requirements = importlib.metadata.requires(DIST) or []
    return {_normalize(re.match(r"[A-Za-z0-9_.-]+", r).group(0)) for r in requirements if "extra ==" not in r}


def imported_modules(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_setup_commands_install_the_base_package_and_run_a_command():
    commands = setup_commands()
    assert len(commands) == 2, f"expected the install command and one command to run, got {commands}"
    install, first_run = commands
    # no extras: the README's first block must run on the base dependencies alone
    assert re.fullmatch(r"pip install (-e )?\.", install), f"install command is {install!r}"
    match = re.fullmatch(r"python -m fused_inception (\S+)", first_run)
    assert match and match.group(1) in COMMANDS, f"{first_run!r} is not a fused_inception command"


def test_first_block_imports_only_base_dependencies():
    allowed_dists = base_dependencies() | {DIST}
    assert {"torch", "triton", "numpy"} <= allowed_dists, allowed_dists
    owners = importlib.metadata.packages_distributions()
    outside = []
    for module in sorted(imported_modules(first_python_block())):
        if module in sys.stdlib_module_names:
            continue
        dists = {_normalize(d) for d in owners.get(module, [])}
        if not dists & allowed_dists:
            outside.append(f"{module} (from {sorted(dists) or 'no installed distribution'})")
    assert not outside, f"the README's first block imports modules outside {sorted(allowed_dists)}: {outside}"


def test_imported_modules_sees_every_import_form():
    source = "import a.b, c\nfrom d.e import f\nfrom . import g\nimport torchvision as tv\n"
    assert imported_modules(source) == {"a", "c", "d", "torchvision"}


def test_first_block_runs_and_prints_what_it_says(tmp_path):
    block = first_python_block()
    # `print(...)  # <expected>`: the README states what the block prints
    expected = [m.group(1).strip() for m in re.finditer(r"^print\(.*\)\s*#\s*(.+)$", block, flags=re.M)]
    assert expected, "the README's first block should print something checkable"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"the README's first block failed:\n{proc.stderr[-3000:]}"
    assert proc.stdout.splitlines() == expected, (proc.stdout, expected)
