"""The docs name real code: every `pyinit/FILE.py` path, and every `FILE.py:Name` or
`FILE.py:Class.member` hop, in docs/*.md and README.md must exist in the package.

A path may be written from the repository (`pyinit/services/runner.py`) or from the
package (`services/runner.py`, as docs/architecture.md's paragraphs do). A name is a
module-level class, function or assignment; a member is a method, a class-level
assignment (dataclass fields included) or an attribute set on `self` in a method.
The check is `ast` only: nothing is imported. This keeps docs/architecture.md's hops
from drifting silently when code moves."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pyinit"
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
SUBPACKAGES = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# pyinit/x/y.py or (not after a path character) core/y.py, then an optional :Name[.member]
REFERENCE = re.compile(
    rf"(?:(?<![\w/.-])pyinit/(?P<full>[\w/]+\.py)"
    rf"|(?<![\w/.-])(?P<short>(?:{'|'.join(SUBPACKAGES)})/[\w/]+\.py))"
    rf"(?::(?P<name>{_NAME}(?:\.{_NAME})?))?"
)


def references(text: str) -> list[tuple[str, str | None]]:
    """(path under pyinit/, name or None) for every reference in text."""
    found = REFERENCE.finditer(text)
    return [(m.group("full") or m.group("short"), m.group("name")) for m in found]


@cache
def definitions(rel: str) -> dict[str, set[str]] | None:
    """Module-level names of pyinit/rel -> their members (empty for non-classes);
    None if the file does not exist."""
    path = PACKAGE / rel
    if not path.is_file():
        return None
    tree = ast.parse(path.read_text(), str(path))
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            out[node.name] = members(node)
        else:
            for name in assigned(node):
                out.setdefault(name, set())
    return out


def assigned(node: ast.AST) -> list[str]:
    """Names bound by an assignment statement (a = b = ..., a: T = ..., a, b = ...)."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    else:
        return []
    names = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.append(sub.id)
    return names


def members(cls: ast.ClassDef) -> set[str]:
    out: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
            for sub in ast.walk(node):  # self.x = ... in a method
                if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    for t in targets:
                        if (
                            isinstance(t, ast.Attribute)
                            and isinstance(t.value, ast.Name)
                            and t.value.id == "self"
                        ):
                            out.add(t.attr)
        else:
            out.update(assigned(node))
    return out


def problem(rel: str, name: str | None) -> str | None:
    """Why a reference is broken, or None."""
    found = definitions(rel)
    if found is None:
        return f"pyinit/{rel} does not exist"
    if name is None:
        return None
    top, _, member = name.partition(".")
    if top not in found:
        return f"pyinit/{rel} defines no {top}"
    if member and member not in found[top]:
        return f"{top} in pyinit/{rel} has no member {member}"
    return None


def broken(paths: list[Path]) -> list[str]:
    out = []
    for doc in paths:
        for lineno, line in enumerate(doc.read_text().splitlines(), 1):
            for rel, name in references(line):
                why = problem(rel, name)
                if why is not None:
                    ref = f"{rel}:{name}" if name else rel
                    where = doc.relative_to(ROOT) if ROOT in doc.parents else doc
                    out.append(f"{where}:{lineno}: {ref}: {why}")
    return out


def test_every_code_reference_in_the_docs_exists() -> None:
    bad = broken(DOCS)
    assert not bad, "references to code that does not exist:\n" + "\n".join(bad)


def test_the_architecture_doc_names_its_hops() -> None:
    """The check above has something to check: the doc's hops are found."""
    refs = references((ROOT / "docs" / "architecture.md").read_text())
    assert ("boot.py", "Init.run") in refs
    assert len([r for r in refs if r[1]]) >= 40


def test_the_checker_finds_broken_references(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "`pyinit/boot.py:Init.run` and `services/runner.py:SlotRunner.apply` are fine;\n"
        "so are `core/machine.py:Policy.kill_timeout` and `pyinit/boot.py:Init.main_pid`;\n"
        "`pyinit/supervisor.py`, `pyinit/boot.py:Init.nothing`, `core/machine.py:Nope`\n"
        "and `control/requests.py:ControlRequests.after_change` are not;\n"
        "`tests/services/x.py` and `/usr/lib/x/pyinit/nothing.py` are no references.\n"
    )
    lines = broken([doc])
    assert [line.split(": ", 1)[1] for line in lines] == [
        "supervisor.py: pyinit/supervisor.py does not exist",
        "boot.py:Init.nothing: Init in pyinit/boot.py has no member nothing",
        "core/machine.py:Nope: pyinit/core/machine.py defines no Nope",
        "control/requests.py:ControlRequests.after_change: "
        "ControlRequests in pyinit/control/requests.py has no member after_change",
    ]
