"""`model-cache status`: which nodes hold which model, as their agents
publish it on the Nodes (webhook/inventory.py)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from webhook.inventory import NodeView, node_view


def register(sub: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    from webhook.cli.output import add_output_argument

    p = sub.add_parser("status", help="which nodes hold which model: size, verified, last used, prewarmed "
                                      "(as the node agents publish it)", formatter_class=formatter)
    p.add_argument("--model", help="only this model")
    add_output_argument(p, "text: a table for people; json, yaml: one document for scripts")
    p.set_defaults(func=run_status)


def document(nodes: list[NodeView], model: str | None = None) -> dict[str, Any]:
    """Pure: the status document of NODES."""
    return {"nodes": [{"name": n.name, "schedulable": n.schedulable,
                       "models": [asdict(h) for h in n.holdings if model in (None, h.model)]} for n in nodes]}


def as_text(doc: dict[str, Any]) -> str:
    from webhook.quantity import describe

    rows = [("NODE", "MODEL", "REVISION", "SIZE", "VERIFIED", "LAST USED", "PREWARMED")]
    for n in doc["nodes"]:
        if not n["models"]:
            rows.append((n["name"], "-", "", "", "", "", ""))
        for m in n["models"]:
            rows.append((n["name"], m["model"], m["revision"], describe(m["size"]), "yes" if m["verified"] else "no",
                         m["lastUsed"], "yes" if m["prewarmed"] else "no"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run_status(args: argparse.Namespace) -> int:
    from webhook.cli.output import emit
    from webhook.errors import UsageError
    from webhook.kube import api_client, load_configuration

    cfg = load_configuration()
    if cfg is None:
        raise UsageError("no kubernetes client configuration: set MODEL_CACHE_KUBECONFIG or KUBECONFIG")
    client = api_client(cfg)
    from kubernetes import client as k8s

    raw = k8s.CoreV1Api(client).list_node(_preload_content=False)
    import json

    nodes = sorted((node_view(n) for n in json.loads(raw.data)["items"]), key=lambda n: n.name)
    doc = document(nodes, args.model)
    emit(doc, args.output, lambda: as_text(doc))
    return 0
