"""The pure core imports no Flask, no kubernetes client, no metrics (issue 11):
checked in a fresh interpreter, so what another test imported cannot hide it.
The webhook's modules import each other without cycles, and never reach for
another module's private names (issue 15): read from the source, so a lazy
import inside a function counts too."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

CORE = ["webhook.strategies", "webhook.mutate", "webhook.objects", "webhook.validate.rules", "webhook.admission.validating",
        "webhook.facts.use", "webhook.facts.cluster", "webhook.admission", "webhook.admission.handlers",
        "webhook.explain", "webhook.policy", "webhook.quantity", "webhook.vocabulary"]
SHELL = ["flask", "gunicorn", "kubernetes", "prometheus_client", "urllib3", "boto3", "huggingface_hub"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_shell(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    leaked = sorted({m.split(".")[0] for m in loaded} & set(SHELL))
    assert not leaked, f"{module} pulls in {leaked}"


def test_the_downloader_command_line_starts_without_the_webhook_stack() -> None:
    code = ("import json, sys\nfrom webhook.cli import build_parser\nbuild_parser()\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not {m.split(".")[0] for m in loaded} & {"flask", "gunicorn", "kubernetes", "prometheus_client", "pydantic"}


# --- the import graph: no cycles, no private names across modules ------------------

WEBHOOK = Path(__file__).resolve().parent.parent / "webhook"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the module whose code runs first
    names: tuple[str, ...]  # the names taken from it (`from target import a, b`)
    line: int


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs at some time: what sits under `if TYPE_CHECKING:` is for
    the type checker only (a cycle there never runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(root: Path) -> tuple[dict[str, Path], list[Import], list[str]]:
    """The modules under ROOT (a package), the imports among them, and every
    use of a private name of one module in another (`from m import _x`, `m._x`)."""
    modules = _modules(root)
    found: list[Import] = []
    private: list[str] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        bound: dict[str, str] = {}  # local name -> module it stands for
        nodes = list(_runtime_nodes(ast.parse(path.read_text(), str(path))))
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        found.append(Import(name, alias.name, (), node.lineno))
                        bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if base not in modules:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        found.append(Import(name, sub, (), node.lineno))
                        bound[alias.asname or alias.name] = sub
                    else:
                        found.append(Import(name, base, (alias.name,), node.lineno))
                        if alias.name.startswith("_") and base != name:
                            private.append(f"{path.relative_to(root.parent)}:{node.lineno}: from {base} import {alias.name}")
        for node in nodes:
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__") and bound[node.value.id] != name):
                private.append(f"{path.relative_to(root.parent)}:{node.lineno}: {bound[node.value.id]}.{node.attr}")
    return modules, found, private


def import_cycles(root: Path) -> list[list[str]]:
    """Cycles in the import graph of the package at ROOT. Importing a.b.c runs a
    and a.b first: those count too, unless the importer is inside them already
    (a package's __init__ importing its own modules is no cycle)."""
    modules, found, _ = imports_of(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in found:
        parts = imp.target.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in modules and target != imp.importer and not imp.importer.startswith(target + "."):
                graph[imp.importer].add(target)
    cycles, state, path = [], {}, []  # state: 1 on the path, 2 done

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycles_among_webhook_modules() -> None:
    cycles = import_cycles(WEBHOOK)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_uses_another_modules_private_names() -> None:
    _, _, private = imports_of(WEBHOOK)
    assert not private, "private names used across modules:\n" + "\n".join(private)


def test_the_checks_find_a_real_cycle_and_a_real_private_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.a import A\n")  # its own module: no cycle
    (pkg / "sub" / "a.py").write_text("from typing import TYPE_CHECKING\nA = 1\n"
                                      "if TYPE_CHECKING:\n    from pkg.b import B\n")  # type-only: no cycle
    (pkg / "b.py").write_text("from pkg.sub.a import A\nimport pkg.c as c\nx = c._hidden\nB = 1\n")
    (pkg / "c.py").write_text("def f():\n    from pkg.b import _y\n")  # lazy, but a cycle all the same
    assert [" -> ".join(c) for c in import_cycles(pkg)] == ["pkg.b -> pkg.c -> pkg.b"]
    _, _, private = imports_of(pkg)
    assert sorted(private) == ["pkg/b.py:3: pkg.c._hidden", "pkg/c.py:2: from pkg.b import _y"]
