"""What users do to injected pods and annotated workloads on a real API server
(issue 17): edit a pod, `kubectl debug` it, dry runs, workloads of every kind,
server-side apply."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.apiserver.controlplane import ControlPlane, wait_for
from tests.apiserver.pods import annotated_deployment, created_with_headers, simple_pod, stored, warnings_of, workload
from tests.apiserver.served import Webhook
from tests.helpers import pod_template

MEMORY_WARNING = "model tiny-memory (1Mi) uses strategy memory: it is downloaded again on every pod start"


def pods_of(cp: ControlPlane, namespace: str, selector: str, want: int) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]]:
        items = json.loads(cp.core.list_namespaced_pod(namespace, label_selector=selector,
                                                       _preload_content=False).data)["items"]
        return items if len(items) >= want else []
    return wait_for(f"{want} pod(s) {selector} in {namespace}", found, timeout=60, procs=tuple(cp.procs))


def assert_injected(pod: dict[str, Any], strategy: str) -> None:
    assert pod["metadata"]["annotations"]["model.cache/injected"].startswith(f"{strategy}/"), pod["metadata"]
    assert "model-cache" in {v["name"] for v in pod["spec"]["volumes"]}
    assert "model-cache-download" in [c["name"] for c in pod["spec"].get("initContainers", [])]


# --- Pod UPDATE ----------------------------------------------------------------------


def test_editing_an_annotation_on_an_injected_pod(webhook: Webhook, control_plane: ControlPlane) -> None:
    """kubectl annotate/label on a running pod: an UPDATE the webhooks do not
    take (CREATE only), so it goes through untouched, with no review asked."""
    cp = control_plane
    before, _ = created_with_headers(cp.api_client(), "plain", simple_pod("u-annotate", {"model.cache/name": "tiny"}))
    reviews = webhook.reviews()
    cp.kubectl("-n", "plain", "annotate", "pod", "u-annotate", "team=search", "model.cache/name=tiny-memory",
               "--overwrite")
    after = stored(cp.kubectl, "/api/v1/namespaces/plain/pods/u-annotate")
    assert after is not None
    assert after["metadata"]["annotations"]["team"] == "search"
    # What was mounted stays as it was: the marker still names what is mounted, the spec is the same.
    assert after["metadata"]["annotations"]["model.cache/injected"] == before["metadata"]["annotations"]["model.cache/injected"]
    assert after["spec"] == before["spec"]
    assert webhook.reviews() == reviews


def test_kubectl_debug_adds_an_ephemeral_container_to_an_injected_pod(webhook: Webhook,
                                                                       control_plane: ControlPlane) -> None:
    """The ephemeralcontainers subresource is not a new pod: no review, no
    denial (the pod carries our volume and init container already), our additions kept."""
    cp = control_plane
    before, _ = created_with_headers(cp.api_client(), "plain", simple_pod("u-debug", {"model.cache/name": "tiny"}))
    reviews = webhook.reviews()
    cp.kubectl("-n", "plain", "debug", "u-debug", "--image=registry.example.com/debug:1.0", "-c", "debugger",
               "--profile=restricted", "--target=server")
    after = stored(cp.kubectl, "/api/v1/namespaces/plain/pods/u-debug")
    assert after is not None
    assert [c["name"] for c in after["spec"]["ephemeralContainers"]] == ["debugger"]
    assert {k: v for k, v in after["spec"].items() if k != "ephemeralContainers"} == before["spec"]
    assert webhook.reviews() == reviews


# --- dry runs --------------------------------------------------------------------------


def _events_about(cp: ControlPlane, namespace: str, owner: str) -> list[dict[str, Any]]:
    items = json.loads(k8s.EventsV1Api(cp.api_client()).list_namespaced_event(
        namespace, _preload_content=False).data)["items"]
    return [e for e in items if e.get("reason") == "ModelCacheWarning" and e["regarding"]["name"] == owner]


def _replica(name: str, owner: str) -> dict[str, Any]:
    """A pod as a ReplicaSet OWNER makes it: the webhook writes an Event about its warnings."""
    pod = simple_pod(name, {"model.cache/name": "tiny"})
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                           "uid": "0f1e2d3c-0000-4000-8000-00000000d1a1", "controller": True}]
    return pod


def test_a_dry_run_writes_no_event_and_persists_nothing(webhook: Webhook, control_plane: ControlPlane) -> None:
    """sideEffects: NoneOnDryRun, held: namespace deploy has no PVC models, so
    every replica gets a warning that becomes an Event, but not on a dry run."""
    cp = control_plane
    api = cp.api_client()
    deployment = annotated_deployment("dry-deploy", "dry-deploy", "tiny-memory", replicas=1)
    resp = k8s.AppsV1Api(api).create_namespaced_deployment("deploy", deployment, dry_run="All", _preload_content=False)
    assert any(MEMORY_WARNING in w for w in warnings_of(resp.headers))  # the webhooks did run
    resp = cp.core.create_namespaced_pod("deploy", _replica("dry-pod", "dry-rs"), dry_run="All", _preload_content=False)
    answered = json.loads(resp.data)
    assert answered["metadata"]["annotations"]["model.cache/injected"].startswith("pvc/")
    assert any("PVC models not found" in w for w in warnings_of(resp.headers))
    # The same ReplicaSet's next pod, for real: its Event is written. Had the
    # dry run written one, this one's create would meet it (the same name, so
    # 409, or skipped as already written in that process): the Event names its pod.
    created_with_headers(api, "deploy", _replica("real-pod", "dry-rs"))
    [event] = wait_for("the Event about ReplicaSet dry-rs", lambda: _events_about(cp, "deploy", "dry-rs"),
                       timeout=30, procs=tuple(cp.procs))
    assert event["note"].endswith("(pod real-pod)"), event["note"]
    # Nothing of the dry runs was stored.
    assert stored(cp.kubectl, "/apis/apps/v1/namespaces/deploy/deployments/dry-deploy") is None
    assert stored(cp.kubectl, "/api/v1/namespaces/deploy/pods/dry-pod") is None
    assert not [rs for rs in json.loads(k8s.AppsV1Api(api).list_namespaced_replica_set(
        "deploy", _preload_content=False).data)["items"] if rs["metadata"]["name"].startswith("dry-deploy")]


# --- workloads -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["StatefulSet", "Job", "CronJob", "DaemonSet"])
def test_workload_templates_are_warned_at_apply_and_their_pods_injected(webhook: Webhook, control_plane: ControlPlane,
                                                                         kind: str) -> None:
    """No node runs here: the pods the controllers create stay Pending, but they are stored injected."""
    cp = control_plane
    name = f"wl-{kind.lower()}"
    template = pod_template(simple_pod("x", {"model.cache/name": "tiny-memory"}), {"app": name})
    validates = webhook.reviews("validate")
    out = cp.kubectl("-n", "deploy", "apply", "-f", "-", input=yaml.safe_dump(workload(kind, name, template)))
    assert f"Warning: {MEMORY_WARNING}" in out.stderr, out.stderr
    if kind == "DaemonSet":
        return  # no node, no pod
    if kind == "CronJob":
        # Its next run is months away: a Job from its template, as `kubectl create job --from` makes one.
        cp.kubectl("-n", "deploy", "create", "job", f"{name}-now", f"--from=cronjob/{name}")
    [pod] = pods_of(cp, "deploy", f"app={name}", 1)
    assert pod["metadata"]["ownerReferences"][0]["kind"] == ("StatefulSet" if kind == "StatefulSet" else "Job")
    assert_injected(pod, "memory")
    # The workload at apply (and a CronJob's Job), never its pod (issue 30).
    assert webhook.reviews("validate") == validates + (2 if kind == "CronJob" else 1)


def test_server_side_apply_twice_has_no_drift_and_no_field_fight(webhook: Webhook, control_plane: ControlPlane) -> None:
    cp = control_plane
    manifest = yaml.safe_dump({**annotated_deployment("ssa", "ssa", "tiny", replicas=1),
                               "metadata": {"name": "ssa", "namespace": "deploy", "labels": {"app": "ssa"}}})
    cp.kubectl("apply", "--server-side", "--field-manager=team", "-f", "-", input=manifest)
    api = cp.api_client()
    first = stored(cp.kubectl, "/apis/apps/v1/namespaces/deploy/deployments/ssa")
    assert first is not None
    out = cp.kubectl("apply", "--server-side", "--field-manager=team", "-f", "-", input=manifest)
    assert "serverside-applied" in out.stdout and "conflict" not in (out.stdout + out.stderr).lower()
    second = stored(cp.kubectl, "/apis/apps/v1/namespaces/deploy/deployments/ssa")
    assert second is not None
    assert second["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert second["spec"]["template"] == first["spec"]["template"]
    diff = cp.kubectl("diff", "--server-side", "--field-manager=team", "-f", "-", input=manifest, check=False)
    assert diff.returncode == 0, diff.stdout
    # The template's fields have one owner, the team: nothing of ours is written into it.
    spec_owners = {f["manager"] for f in second["metadata"]["managedFields"]
                   if "f:spec" in (f.get("fieldsV1") or {}) and f["operation"] == "Apply"}
    updaters = {f["manager"] for f in second["metadata"]["managedFields"] if f["operation"] == "Update"
                and "f:spec" in (f.get("fieldsV1") or {})}
    assert spec_owners == {"team"} and updaters == set(), second["metadata"]["managedFields"]
    [pod] = pods_of(cp, "deploy", "app=ssa", 1)
    assert_injected(pod, "pvc")
