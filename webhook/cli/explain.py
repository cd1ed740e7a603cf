"""`model-cache explain -f FILE`: for each pod template, why it would or would
not be injected, and the warnings it would get. Exit 1 when one that looks
meant for model-cache would not be (missed, denied) or cannot be read, so CI
can gate on it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from webhook.inventory import NodeView
from webhook.cli.output import emit
from webhook.errors import EXIT_FINDINGS
from webhook.explain import Verdict, explain_object
from webhook.objects import pod_kinds
from webhook.policy import PolicyStore
from webhook.facts.cluster import FactsSource


def nodes_from_cluster(configuration: Any) -> list[NodeView]:
    """The cluster's Nodes as their agents publish them (webhook/inventory.py)."""
    import json

    from kubernetes import client as k8s

    from webhook.inventory import node_view
    from webhook.kube import api_client

    raw = k8s.CoreV1Api(api_client(configuration)).list_node(_preload_content=False)
    return [node_view(n) for n in json.loads(raw.data)["items"]]


def format_verdict(v: Verdict) -> str:
    lines = [f"{v.subject}: {v.summary}"]
    if v.placement:
        lines.append(f"  placement: {v.placement}")
    lines += [f"  hint: {h}" for h in v.hints]
    lines += [f"  warning: {w}" for w in v.warnings]
    return "\n".join(lines)


def verdict_document(v: Verdict) -> dict[str, Any]:
    """One verdict as `-o json` gives it (docs/cli.md); `placement` only where
    there is one (--from-cluster, a node-local strategy)."""
    doc = {**asdict(v), "failed": v.failed}
    if doc["placement"] is None:
        del doc["placement"]
    return doc


def run_explain(docs: list[dict[str, Any]], namespace: str, store: PolicyStore, facts: FactsSource | None = None,
                output: str = "text", strict: bool = False, source: str = "the input",
                nodes: list[NodeView] | None = None) -> int:
    """STRICT: a validating warning is a finding too (exit 1). SOURCE: what
    DOCS were read from, for the message when it holds no pod. NODES (the
    cluster's, --from-cluster) add where a hostpath model already is."""
    verdicts = [v for obj in docs for v in explain_object(obj, namespace, store, facts, nodes)]
    failed = any(v.failed or (strict and v.warnings) for v in verdicts)

    def text() -> str:
        if not verdicts:
            return f"{source}: no Pod or pod template ({', '.join(pod_kinds())})"
        return "\n".join(format_verdict(v) for v in verdicts)

    emit({"ok": not failed, "verdicts": [verdict_document(v) for v in verdicts]}, output, text)
    return EXIT_FINDINGS if failed else 0
