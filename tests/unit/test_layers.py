"""The package's shape, checked over its real imports (module- and function-level,
TYPE_CHECKING included): no import cycle, each layer imports only the layers below it,
core/ imports only the standard library, and no class or function outgrows one job.
docs/architecture.md states the same rules; this test is what keeps them true."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pyinit"

# layer -> the layers it may import (itself included). Top-level modules are layers
# of their own: boot and config sit above services and control; the entry points
# and the CLI sit on top.
LOWER = {
    "core": {"core"},
    "linux": {"core", "linux"},
    "runtime": {"core", "linux", "runtime"},
    "output": {"core", "linux", "runtime", "output"},
    "services": {"core", "linux", "runtime", "output", "services"},
    "control": {"core", "runtime", "control", "services.api"},
    "config": {"core", "runtime", "config"},
    "foreign": {"core", "linux", "runtime", "config", "foreign"},
}
LOWER["boot"] = set().union(*LOWER.values()) | {"services", "control", "boot"}
EVERYTHING = LOWER["boot"] | {"foreign", "cli", "entry", "launchers", "__main__", "__init__"}
for top in ("cli", "entry", "launchers", "__main__"):
    LOWER[top] = EVERYTHING
LOWER["__init__"] = {"__init__"}

MAX_CLASS = 350
MAX_FUNCTION = 60


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Every module of the package `name` imports, anywhere in its file."""
    out: set[str] = set()
    package = name.split(".")[:-1] if name in known and not _is_package(name) else name.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(["pyinit", *base] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif _is_import_call(node):
            # importlib.import_module("pyinit.x") / __import__("pyinit.x"), and the
            # tables of module names such calls take (PERSONALITIES, MAINS)
            targets = [node.value]
        else:
            continue
        for target in targets:
            if target == "pyinit" or target.startswith("pyinit."):
                short = target[len("pyinit.") :] if target != "pyinit" else "__init__"
                if short in known:
                    out.add(short)
    out.discard(name)
    return out


def _is_import_call(node: ast.AST) -> bool:
    """A string naming a pyinit module: what a dynamic import (importlib.import_module,
    __import__) loads, wherever the name is written (often a table, not the call)."""
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("pyinit.")
        and node.value.replace(".", "").replace("_", "").isalnum()
    )


def _is_package(name: str) -> bool:
    return (PACKAGE / name.replace(".", "/") / "__init__.py").exists()


def external(tree: ast.Module) -> set[str]:
    """Top-level names of every non-pyinit module imported."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {"pyinit", "__future__"}


def layer(name: str) -> str:
    return name.split(".")[0]


def allowed(src: str, dst: str) -> bool:
    if dst == "__init__":  # pyinit/__init__.py holds only __version__
        return True
    rules = LOWER[layer(src)]
    return layer(dst) in rules or dst in rules or any(dst.startswith(r + ".") for r in rules)


MODULES = modules()
GRAPH = {name: imports(name, tree, set(MODULES)) for name, tree in MODULES.items()}


def test_every_module_belongs_to_a_layer() -> None:
    assert {layer(m) for m in MODULES} <= set(LOWER)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = sorted(
        f"{src} -> {dst}"
        for src, dsts in GRAPH.items()
        for dst in dsts
        if not allowed(src, dst) and not dst.startswith(src + ".")
    )
    assert wrong == []


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names is 3.10+")
def test_core_imports_only_the_standard_library() -> None:
    wrong = sorted(
        f"{name} -> {mod}"
        for name, tree in MODULES.items()
        if layer(name) == "core"
        for mod in external(tree)
        if mod not in sys.stdlib_module_names
    )
    assert wrong == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ is an edge of its own only when it imports something."""
    hollow = {d for d in graph if _is_package(d) and not graph[d]}
    return {k: v - hollow for k, v in graph.items()}


def test_no_import_cycle() -> None:
    assert cycles(_without_packages(GRAPH)) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_layer_rule_refuses_an_upward_import() -> None:
    assert not allowed("core.machine", "runtime.reaper")
    assert not allowed("runtime.loop", "services.manager")
    assert not allowed("control.requests", "services.manager")
    assert allowed("control.requests", "services.api")
    assert allowed("services.manager", "core.machine")


def test_no_class_or_function_outgrows_one_job() -> None:
    big = []
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            size = node.end_lineno - node.lineno + 1 if hasattr(node, "end_lineno") else 0
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS:
                big.append(f"class {name}.{node.name}: {size} lines")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > MAX_FUNCTION:
                big.append(f"def {name}.{node.name}: {size} lines")
    assert big == []


def test_a_dynamic_import_is_an_edge() -> None:
    """importlib.import_module / __import__ by a name held in a table is an import too:
    cli/pyinit.py and entry.py choose their tool's module that way."""
    tree = ast.parse(
        'TOOLS = {"t": "pyinit.cli.tini"}\n'
        "def main(name):\n"
        "    import importlib\n"
        "    importlib.import_module(TOOLS[name]).main()\n"
        '    __import__("pyinit.core.machine", fromlist=["x"])\n'
    )
    assert imports("cli.pyinit", tree, {"cli.tini", "core.machine"}) == {
        "cli.tini",
        "core.machine",
    }


# docs/architecture.md: core/ is pure decisions: "no psutil, no yaml, no sockets". These
# are standard library too, so test_core_imports_only_the_standard_library lets them by.
NO_IO_IN_CORE = {
    "socket",
    "select",
    "selectors",
    "subprocess",
    "ctypes",
    "fcntl",
    "termios",
    "threading",
    "asyncio",
    "multiprocessing",
    "mmap",
    "pty",
}


def test_core_does_no_io() -> None:
    wrong = sorted(
        f"{name} -> {mod}"
        for name, tree in MODULES.items()
        if layer(name) == "core"
        for mod in external(tree)
        if mod in NO_IO_IN_CORE
    )
    assert wrong == []
