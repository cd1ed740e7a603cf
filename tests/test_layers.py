"""The pure core imports no Flask, no kubernetes client, no metrics (issue 11):
checked in a fresh interpreter, so what another test imported cannot hide it.
The webhook's modules import each other without cycles, and never reach for
another module's private names (issue 15); its rooms (folders and top-level
modules) stand on layers, each importing only rooms below it (issue 24). All
read from the source, so a lazy import inside a function counts too, and so
does one under `if TYPE_CHECKING:` (a knot the type checker alone sees is a
knot a reader meets all the same)."""

from __future__ import annotations

import ast
import re
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


def imports_of(root: Path) -> tuple[dict[str, Path], list[Import], list[str]]:
    """The modules under ROOT (a package), the imports among them, and every
    use of a private name of one module in another (`from m import _x`, `m._x`)."""
    modules = _modules(root)
    found: list[Import] = []
    private: list[str] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        bound: dict[str, str] = {}  # local name -> module it stands for
        nodes = list(ast.walk(ast.parse(path.read_text(), str(path))))
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
                                      "if TYPE_CHECKING:\n    from pkg.d import D\n")  # type-only, a cycle all the same
    (pkg / "b.py").write_text("from pkg.sub.a import A\nimport pkg.c as c\nx = c._hidden\nB = 1\n")
    (pkg / "c.py").write_text("def f():\n    from pkg.b import _y\n")  # lazy, but a cycle all the same
    (pkg / "d.py").write_text("from pkg.sub.a import A\nD = 1\n")
    assert [" -> ".join(c) for c in import_cycles(pkg)] == [
        "pkg.b -> pkg.c -> pkg.b", "pkg.sub -> pkg.sub.a -> pkg.d -> pkg.sub", "pkg.sub.a -> pkg.d -> pkg.sub.a"]
    _, _, private = imports_of(pkg)
    assert sorted(private) == ["pkg/b.py:3: pkg.c._hidden", "pkg/c.py:2: from pkg.b import _y"]


# --- the layers: each room imports only the rooms below it -------------------------

# Bottom first. A room is a folder of webhook/ or one of its top-level modules;
# "webhook" is the package itself (its version). Every room is on its own
# layer, so an import between two rooms goes down, or it is a fault.
LAYERS = (
    "webhook", "errors", "vocabulary", "logs", "pydantic_errors",  # words and errors, shared by all
    "quantity", "objects",  # Kubernetes quantities; objects read as plain dicts
    "inventory",  # what a node holds: the agent's Node labels and annotation, read by placement and explain
    "grammar",  # a policy's value grammars (paths, names, quantities)
    "download",  # the downloader (also the one URI grammar)
    "kube", "certs",  # the kubernetes client; certificates
    "facts",  # what strategies read: the model view, the cache use, cluster facts, findings, the marker
    "strategies",  # one module per strategy, and the registry
    "policy",  # policy files: schema built from the registry, store
    "mutate",  # the pure mutation
    "validate",  # the validating rules, and the lookups that feed them
    "admission",  # AdmissionReview in and out; the handlers and the validating review
    "explain",  # why a template would or would not be injected
    "server",  # the shell: Flask, gunicorn, TLS, metrics
    "agent",  # the node agent: uses download/, kube, policy; only its command imports it
    "cli",  # `model-cache`
)


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(root: Path, layers: tuple[str, ...]) -> list[str]:
    """Every import of a room by a room below it in LAYERS, as file:line: a -> b;
    and every room missing from LAYERS."""
    modules, found, _ = imports_of(root)
    rank = {room: i for i, room in enumerate(layers)}
    unknown = sorted({room_of(m) for m in modules} - set(rank))
    up = [f"{modules[imp.importer].relative_to(root.parent)}:{imp.line}: {imp.importer} -> {imp.target}"
          for imp in found if rank.get(room_of(imp.target), -1) > rank.get(room_of(imp.importer), len(layers))]
    return [f"room {room} is on no layer: add it to LAYERS" for room in unknown] + sorted(set(up))


def test_every_room_imports_only_rooms_below_it() -> None:
    up = upward_imports(WEBHOOK, LAYERS)
    assert not up, "imports that run up the layers (tests/test_layers.py, LAYERS):\n" + "\n".join(up)


def test_the_layer_check_finds_an_upward_import_and_a_room_on_no_layer(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import H\n")
    (pkg / "high.py").write_text("from pkg.low.a import TYPE_CHECKING\nH = 1\n")
    (pkg / "stray.py").write_text("")
    assert upward_imports(pkg, ("pkg", "low", "high")) == [
        "room stray is on no layer: add it to LAYERS", "pkg/low/a.py:3: pkg.low.a -> pkg.high"]


def test_docs_architecture_names_every_room_in_its_layer_and_only_paths_that_exist() -> None:
    """docs/architecture.md's table lists the rooms in LAYERS' order, and every
    module it names (`webhook/x/y.py`, `x/y.py`, `x/y.name`) exists."""
    doc = (WEBHOOK.parent / "docs" / "architecture.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "`" in line.split("|")[2]]
    listed = [name.strip(" `/") for row in rows for name in row.split("|")[2].split(", ")]
    assert [("webhook" if r == "__init__" else r) for r in listed] == list(LAYERS)
    folders = "|".join(p.name for p in WEBHOOK.iterdir() if p.is_dir() and not p.name.startswith("_"))
    named = set(re.findall(rf"`(?:webhook/)?((?:{folders})/[\w/]+)", doc))
    assert len(named) > 20, named
    for path in named:
        assert (WEBHOOK / path).is_dir() or (WEBHOOK / f"{path}.py").exists(), f"docs/architecture.md names {path}"
