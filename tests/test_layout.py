"""The package's layering, read from the source (no import runs): no import cycles, lazy imports
(inside functions) included; the library never imports the commands (``fused_inception.tools``);
``kernels/`` (installed as ``fused_inception.kernels``) imports nothing of the package above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package directory -> the dotted name it is installed as (pyproject.toml's package-dir)
PACKAGE_DIRS = {ROOT / "fused_inception": "fused_inception", ROOT / "kernels": "fused_inception.kernels"}
TOOLS = "fused_inception.tools"
KERNELS = "fused_inception.kernels"


def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    modules = {}
    for directory, package in PACKAGE_DIRS.items():
        for path in directory.rglob("*.py"):
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


MODULES = _module_files()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its source (top level,
    functions, type-checking blocks alike): ``from a import b`` counts as importing a.b when that
    is a module, else a."""
    base = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # "import a.b.c" names a.b.c; keep the longest prefix that is one of our modules
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def test_the_graph_sees_the_package():
    """The scan finds the layers and the edges between them (else the tests below prove nothing)."""
    assert {"fused_inception.forward", "fused_inception.kernels.configs", "fused_inception.tools"} <= set(MODULES)
    assert "fused_inception.kernels" in GRAPH["fused_inception.forward"]
    assert "fused_inception.kernels.configs" in GRAPH["fused_inception.kernels.tuned_configs"]
    assert any(target.startswith(TOOLS) for target in GRAPH["fused_inception.__main__"])


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith(TOOLS) and n != "fused_inception.__main__"))
def test_library_does_not_import_the_tools(name):
    assert not {t for t in GRAPH[name] if t.startswith(TOOLS)}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(KERNELS)))
def test_kernels_import_nothing_above_them(name):
    assert not {t for t in GRAPH[name] if not t.startswith(KERNELS)}
