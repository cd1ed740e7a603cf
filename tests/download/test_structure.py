"""The downloader's modules form no import cycle and use no other module's
private names (issue 15): each one can be read, tested and changed alone."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "webhook" / "download"


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, lazy ones too."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for module, names in _imports(path):
            if module in modules and module != name:
                deps.add(module)
            deps.update(f"{module}.{n}" for n in names if f"{module}.{n}" in modules)
        # A package's __init__ is imported with its submodules; that is no cycle of theirs.
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def test_no_import_cycle_in_the_downloader() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_private_name_of_another_module_is_used() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        # Libraries' own private names (argparse._SubParsersAction) are theirs to answer for.
        libraries = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                     for a in n.names if not a.name.startswith("webhook")}
        libraries |= {a.asname or a.name for n in ast.walk(tree)
                      if isinstance(n, ast.ImportFrom) and not (n.module or "").startswith("webhook") for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("webhook"):
                offenders += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_")]
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id not in ("self", "cls") and base.id not in libraries:
                offenders.append(f"{path.name}: {base.id}.{node.attr}")  # hc._x, fetcher._check_cancel()
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self":
                offenders.append(f"{path.name}: self.{base.attr}.{node.attr}")  # another object's, e.g. self.fetcher._x
    assert not offenders, "\n".join(sorted(offenders))
