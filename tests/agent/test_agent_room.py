"""The agent is a room of its own (DESIGN.md): nothing in the admission path
imports it; only its command does. The webhook reads its inventory through
webhook/inventory.py, which imports neither the agent nor a client."""

from __future__ import annotations

import ast
from pathlib import Path

WEBHOOK = Path(__file__).resolve().parents[2] / "webhook"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_only_the_agents_command_imports_the_agent() -> None:
    importers = sorted(str(p.relative_to(WEBHOOK)) for p in WEBHOOK.rglob("*.py")
                       if "agent" not in p.relative_to(WEBHOOK).parts[:1]
                       and any(m == "webhook.agent" or m.startswith("webhook.agent.") for m in _imports(p)))
    assert importers == ["cli/agent.py"]


def test_the_inventory_is_pure() -> None:
    assert not {m for m in _imports(WEBHOOK / "inventory.py") if m.startswith(("webhook.agent", "kubernetes"))}
