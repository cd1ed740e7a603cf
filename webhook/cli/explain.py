"""`model-cache explain -f FILE`: for each pod template, why it would or would
not be injected, and the warnings it would get. Exit 1 when a pod would be
denied or a template cannot be read, so CI can gate on it."""

from __future__ import annotations

from pathlib import Path

from webhook.cli.inject import load_store, read_objects
from webhook.explain import Verdict, explain_object


def _facts_from_cluster():  # type: ignore[no-untyped-def]
    """The cluster's PVCs and Secrets (key names only), as the webhook reads them."""
    from webhook.validate.lookups import create_facts_provider

    return create_facts_provider()


def format_verdict(v: Verdict) -> str:
    lines = [f"{v.subject}: {v.summary}"]
    lines += [f"  hint: {h}" for h in v.hints]
    lines += [f"  warning: {w}" for w in v.warnings]
    return "\n".join(lines)


def run_explain(file: str, namespace: str | None, policies: Path, cluster_facts: bool = False,
                downloader_image: str | None = None) -> int:
    store = load_store(policies, downloader_image)
    facts = _facts_from_cluster() if cluster_facts else None
    verdicts = [v for obj in read_objects(file) for v in explain_object(obj, namespace, store, facts)]
    if not verdicts:
        print(f"{file}: no Pod or pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)")
    for verdict in verdicts:
        print(format_verdict(verdict))
    return 1 if any(v.outcome in ("denied", "invalid") for v in verdicts) else 0
