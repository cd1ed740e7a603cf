"""Pods and Deployments as plain dicts, and what the API server answers when a pod is created."""

from __future__ import annotations

import json
import subprocess
from typing import Any, Callable

from kubernetes import client as k8s

from tests.helpers import deployment, pod_template


def simple_pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A plain pod dict; restricted-compliant, so it passes every Pod Security level on its own."""
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "server", "image": "registry.example.com/server:1.0",
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }
    pod["spec"].update(spec)
    return pod


def annotated_deployment(name: str, app: str, model: str, replicas: int) -> dict[str, Any]:
    """A Deployment NAME of simple pods labelled app=APP that ask for MODEL."""
    pod = simple_pod("x", {"model.cache/name": model})
    return deployment(pod_template(pod, {"app": app}), name, replicas=replicas)


def created_with_headers(api: k8s.ApiClient, namespace: str, pod: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Creates a pod; returns it as stored (a plain dict) and the Warning headers of the answer."""
    resp = k8s.CoreV1Api(api).create_namespaced_pod(namespace, pod, _preload_content=False)
    body = json.loads(resp.data)
    return body, warnings_of(resp.headers)


def warnings_of(headers: Any) -> list[str]:
    """The text of each `Warning: 299 - "..."` header (RFC 7234 form the API server uses)."""
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else [headers.get("Warning", "")]
    out = []
    for value in values:
        for part in _split_warning_header(value):
            out.append(part)
    return out


def _split_warning_header(value: str) -> list[str]:
    # Several warnings may share one header, comma-separated; each is 299 - "text".
    out, i = [], 0
    while True:
        start = value.find('"', i)
        if start < 0:
            return out
        j, text = start + 1, []
        while j < len(value) and value[j] != '"':
            if value[j] == "\\" and j + 1 < len(value):
                j += 1
            text.append(value[j])
            j += 1
        out.append("".join(text))
        i = j + 1


def workload(kind: str, name: str, template: dict[str, Any]) -> dict[str, Any]:
    """A StatefulSet, Job, CronJob or DaemonSet NAME of TEMPLATE (one replica
    where there is a count), as a team would write it."""
    labels = dict(template["metadata"]["labels"])
    if kind == "StatefulSet":
        spec: dict[str, Any] = {"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
                                "template": template}
    elif kind == "DaemonSet":
        spec = {"selector": {"matchLabels": labels}, "template": template}
    elif kind == "Job":
        spec = {"backoffLimit": 0, "template": _run_once(template)}
    elif kind == "CronJob":
        spec = {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"backoffLimit": 0, "template": _run_once(template)}}}
    else:
        raise ValueError(f"not a workload kind: {kind}")
    group = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    return {"apiVersion": group, "kind": kind, "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def _run_once(template: dict[str, Any]) -> dict[str, Any]:
    out = {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}
    return out


def stored(kubectl: Callable[..., subprocess.CompletedProcess[str]], path: str) -> dict[str, Any] | None:
    """The object at PATH (/api/v1/namespaces/ns/pods/x, ...) as stored, or None
    when there is none; KUBECTL is ControlPlane.kubectl."""
    out = kubectl("get", "--raw", path, check=False)
    if out.returncode != 0:
        if "NotFound" in out.stderr or "not found" in out.stderr:
            return None
        raise AssertionError(f"kubectl get --raw {path}: {out.stderr}")
    return json.loads(out.stdout)
