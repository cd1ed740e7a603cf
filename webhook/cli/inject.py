"""`model-cache inject -f FILE`: objects as the webhook would change them.

For GitOps and CI: the same decision as /mutate, applied to Pods and to the
pod templates of workload objects, printed as multi-document YAML.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from webhook.admission.shapes import pod_problem
from webhook.errors import Denied, InjectError
from webhook.mutate import mutate_pod
from webhook.policy import PolicyStore
from webhook.objects import pod_templates

def _describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', 'object')} {(obj.get('metadata') or {}).get('name', '(unnamed)')}"


def inject_object(obj: dict[str, Any], store: PolicyStore, namespace: str | None) -> None:
    """Mutates OBJ's pods in place, as the webhook would at their creation."""
    ns = (obj.get("metadata") or {}).get("namespace") or namespace or "default"
    for where, pod in pod_templates(obj):
        if pod is None:
            raise InjectError(f"{_describe(obj)}: {where} is not an object")
        problem = pod_problem(pod, where)
        if problem is not None:
            raise InjectError(f"{_describe(obj)}: {problem}")
        try:
            mutated, _ = mutate_pod(pod, ns, store)
        except Denied as err:
            raise InjectError(f"{_describe(obj)} in namespace {ns}: denied: {err}") from None
        if mutated is not None:
            pod.clear()
            pod.update(mutated)


def load_store(policies: Path, downloader_image: str | None = None) -> PolicyStore:
    if not policies.is_dir():
        raise InjectError(f"policy directory {policies} not found; pass --policies DIR (or --from-cluster)")
    store = PolicyStore(policies, downloader_image=downloader_image)
    ok, why = store.readiness()
    if not ok:
        raise InjectError(why)
    return store


def read_objects(file: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of a multi-document YAML file, or - for stdin."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as err:
        raise InjectError(f"cannot read {file}: {err.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise InjectError(f"{file} is not valid YAML: {err}") from None
    for doc in docs:
        if not isinstance(doc, dict):
            raise InjectError(f"{file}: every document must be a Kubernetes object (a mapping)")
    return docs


def run_inject(file: str, namespace: str | None, policies: Path, downloader_image: str | None = None) -> int:
    store = load_store(policies, downloader_image)
    docs = read_objects(file)
    for doc in docs:
        inject_object(doc, store, namespace)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False, default_flow_style=False)
    return 0
