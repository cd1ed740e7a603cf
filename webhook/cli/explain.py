"""`model-cache explain -f FILE`: for each pod template, why it would or would
not be injected, and the warnings it would get. Exit 1 when one that looks
meant for model-cache would not be (missed, denied) or cannot be read, so CI
can gate on it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from webhook.cli.inject import load_store, read_objects
from webhook.cli.output import emit
from webhook.explain import Verdict, explain_object
from webhook.objects import pod_kinds


def _facts_from_cluster():  # type: ignore[no-untyped-def]
    """The cluster's PVCs and Secrets (key names only), as the webhook reads them."""
    from webhook.validate.lookups import create_facts_provider

    return create_facts_provider()


def _nodes_from_cluster() -> list:  # type: ignore[type-arg]
    """The cluster's Nodes as their agents publish them (webhook/inventory.py)."""
    import json

    from kubernetes import client as k8s

    from webhook.inventory import node_view
    from webhook.kube import api_client, load_configuration

    cfg = load_configuration()
    if cfg is None:
        return []
    raw = k8s.CoreV1Api(api_client(cfg)).list_node(_preload_content=False)
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


def run_explain(file: str, namespace: str | None, policies: Path, cluster_facts: bool = False,
                downloader_image: str | None = None, output: str = "text") -> int:
    store = load_store(policies, downloader_image)
    facts = _facts_from_cluster() if cluster_facts else None
    nodes = _nodes_from_cluster() if cluster_facts else None
    verdicts = [v for obj in read_objects(file) for v in explain_object(obj, namespace, store, facts, nodes)]
    failed = any(v.failed for v in verdicts)

    def text() -> str:
        if not verdicts:
            return f"{file}: no Pod or pod template ({', '.join(pod_kinds())})"
        return "\n".join(format_verdict(v) for v in verdicts)

    emit({"ok": not failed, "verdicts": [verdict_document(v) for v in verdicts]}, output, text)
    return 1 if failed else 0
