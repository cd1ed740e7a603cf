"""The agent's calls to the API server: its own Node (read, and patched with
our labels and annotation only: a ValidatingAdmissionPolicy holds it to
that), and the pods bound to it (which models they mount)."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from webhook.inventory import INVENTORY_ANNOTATION, Holding, node_patch
from webhook.vocabulary import INJECTED

_DONE = ("Succeeded", "Failed")


def read_node(core: k8s.CoreV1Api, node: str) -> tuple[dict[str, str], dict[str, str]]:
    """NODE's labels and annotations."""
    metadata = core.read_node(node).metadata
    return dict(metadata.labels or {}), dict(metadata.annotations or {})


def publish(core: k8s.CoreV1Api, node: str, labels: dict[str, str], annotations: dict[str, str],
            holdings: list[Holding]) -> dict[str, Any] | None:
    """Our labels and annotation on NODE (which has LABELS and ANNOTATIONS
    now) say HOLDINGS; the patch sent, or None when they said so already."""
    patch = node_patch(labels, holdings)
    meta = patch["metadata"]
    if not meta["labels"] and annotations.get(INVENTORY_ANNOTATION) == meta["annotations"][INVENTORY_ANNOTATION]:
        return None
    core.patch_node(node, patch)
    return patch


def in_use(pods: list[dict[str, Any]]) -> frozenset[tuple[str, str]]:
    """Pure: the (model, revision) hostpath pods among PODS mount; a pod that
    has ended mounts nothing."""
    out = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _DONE:
            continue
        marker = ((pod.get("metadata") or {}).get("annotations") or {}).get(INJECTED, "")
        parts = marker.split("/")
        if len(parts) == 3 and parts[0] == "hostpath":
            out.add((parts[1], parts[2]))
    return frozenset(out)


def configmap_data(core: k8s.CoreV1Api, ref: str) -> dict[str, str]:
    """The data of ConfigMap REF (`NAMESPACE/NAME`): the policy files. The
    agent runs in a namespace of its own (its hostPath needs the privileged
    Pod Security level, the webhook's is restricted), so it reads the
    webhook's ConfigMap rather than mounting it."""
    namespace, _, name = ref.partition("/")
    return dict(core.read_namespaced_config_map(name, namespace).data or {})


def pods_on(core: k8s.CoreV1Api, node: str) -> list[dict[str, Any]]:
    """The pods bound to NODE, as plain dicts (only what `in_use` reads)."""
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    return [{"metadata": {"annotations": p.metadata.annotations or {}}, "status": {"phase": p.status.phase}}
            for p in pods]
