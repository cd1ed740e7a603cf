"""model-cache among other webhooks and slowness, on a real API server
(issue 17): a mesh injector that runs after ours and reinvokes it, and our
webhook slower than its timeoutSeconds (a paused process: SIGSTOP)."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane, wait_for
from tests.apiserver.loopback import LoopbackWebhook
from tests.apiserver.pods import annotated_deployment, created_with_headers, simple_pod
from tests.apiserver.served import Webhook

MESH_PROXY = {"name": "mesh-proxy", "image": "registry.example.com/mesh-proxy:1.0", "restartPolicy": "Always",
              "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}


class MeshInjector(LoopbackWebhook):
    """A mutating webhook on loopback that does what Istio's does with native
    sidecars: its proxy goes first among the init containers (APPEND: last,
    after ours)."""

    def __init__(self, certs: Path, append: bool = False) -> None:
        self.calls = 0
        self.append = append
        super().__init__(certs, self._inject)

    def _inject(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        inits = request["object"]["spec"].get("initContainers") or []
        if any(c["name"] == MESH_PROXY["name"] for c in inits):
            return {}
        where = "/spec/initContainers/-" if self.append else "/spec/initContainers/0"
        patch = ([{"op": "add", "path": where, "value": MESH_PROXY}] if inits
                 else [{"op": "add", "path": "/spec/initContainers", "value": [MESH_PROXY]}])
        return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}

    def configuration(self, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "inject.mesh.example.com", "admissionReviewVersions": ["v1"],
                "clientConfig": self.client_config("/mutate"),
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                "objectSelector": {"matchLabels": {"mesh": "on"}},
                "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
            }],
        }


@pytest.fixture(params=[False, True], ids=["sidecar-first", "sidecar-appended"])
def mesh(control_plane: ControlPlane, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MeshInjector]:
    injector = MeshInjector(tmp_path / "mesh-certs", append=request.param)
    adm = k8s.AdmissionregistrationV1Api(control_plane.api_client())
    # Named after ours: the API server calls mutating webhooks in the order of their configurations' names.
    adm.create_mutating_webhook_configuration(injector.configuration("zz-mesh"))
    try:
        yield injector
    finally:
        adm.delete_mutating_webhook_configuration("zz-mesh")
        injector.close()


def meshed(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod the mesh injects into (its label)."""
    pod = simple_pod(name, annotations)
    pod["metadata"]["labels"] = {"mesh": "on"}
    return pod


def mutate_count(webhook: Webhook, result: str) -> float:
    return sum(v for (name, labels), v in webhook.metrics().items()
               if name == "model_cache_reviews_total" and ("endpoint", "mutate") in labels
               and ("result", result) in labels)


def test_a_mesh_injector_after_ours_reinvokes_it_and_the_downloader_stays_after_the_sidecar(
        webhook: Webhook, control_plane: ControlPlane, mesh: MeshInjector) -> None:
    cp = control_plane

    def init_names(pod: dict[str, Any]) -> list[str]:
        return [c["name"] for c in pod["spec"].get("initContainers", [])]

    # The mesh's configuration is in force once a pod of its comes back with the proxy.
    wait_for("the mesh webhook in force", lambda: init_names(json.loads(cp.core.create_namespaced_pod(
        "plain", meshed("mesh-probe"), dry_run="All", _preload_content=False).data)) == ["mesh-proxy"], timeout=30)
    mutated, skipped = mutate_count(webhook, "mutated"), mutate_count(webhook, "skipped")
    name = "meshed-appended" if mesh.append else "meshed"
    stored, _ = created_with_headers(cp.api_client(), "plain", meshed(name, {"model.cache/name": "tiny"}))
    # Ours first (its name sorts first), then the mesh's proxy, then ours again
    # (reinvocationPolicy: IfNeeded): a proxy put first changes nothing then; an
    # appended one has our downloader moved after it.
    assert init_names(stored) == ["mesh-proxy", "model-cache-download"]
    assert stored["metadata"]["annotations"]["model.cache/injected"].startswith("pvc/")
    if mesh.append:
        wait_for("our reinvocation counted", lambda: mutate_count(webhook, "mutated") >= mutated + 2, timeout=10)
        assert mutate_count(webhook, "skipped") == skipped
    else:
        wait_for("our reinvocation counted", lambda: mutate_count(webhook, "skipped") >= skipped + 1, timeout=10)
        assert mutate_count(webhook, "mutated") == mutated + 1
    # One volume, one mount, one downloader: the reinvocation added nothing twice.
    assert [v["name"] for v in stored["spec"]["volumes"]].count("model-cache") == 1
    assert [m["name"] for m in stored["spec"]["containers"][0]["volumeMounts"]].count("model-cache") == 1


# --- slower than timeoutSeconds ------------------------------------------------------


@pytest.fixture()
def paused(webhook: Webhook, control_plane: ControlPlane) -> Iterator[Webhook]:
    """model-cache serve stopped in its tracks (master and workers): connections
    are accepted by the kernel, nothing answers."""
    assert webhook.proc is not None
    group = webhook.proc.popen.pid  # a session leader: its group is the whole server
    os.killpg(group, signal.SIGSTOP)
    try:
        yield webhook
    finally:
        os.killpg(group, signal.SIGCONT)
        wait_for("model-cache answering again", webhook._admission_works, timeout=60)


def test_a_webhook_slower_than_its_timeout_gets_its_failure_policy(paused: Webhook, control_plane: ControlPlane) -> None:
    cp = control_plane
    started = time.monotonic()
    with pytest.raises(ApiException) as err:
        cp.core.create_namespaced_pod("failure", simple_pod("slow-asks", {"model.cache/name": "tiny"}))
    waited = time.monotonic() - started
    text = json.loads(err.value.body)["message"]
    # failurePolicy: Fail on pods that ask, after timeoutSeconds (5), not the API server's own 30 s.
    assert 'failed calling webhook "pods.mutate.model.cache"' in text and "deadline exceeded" in text, text
    assert 4 <= waited < 15, waited
    # Pods that do not ask are never sent: created at once.
    started = time.monotonic()
    cp.core.create_namespaced_pod("failure", simple_pod("slow-plain"))
    assert time.monotonic() - started < 3
    # failurePolicy: Ignore on workloads: the Deployment is created, after the timeout.
    deployment = annotated_deployment("slow-deploy", "slow-deploy", "tiny", replicas=0)
    k8s.AppsV1Api(cp.api_client()).create_namespaced_deployment("failure", deployment)


# --- a later webhook that breaks our injection (issue 30) ------------------------------


def _index(items: list[dict[str, Any]], name: str) -> int:
    return next(i for i, item in enumerate(items) if item.get("name") == name)


def _mount(pod: dict[str, Any]) -> str:
    return f"/spec/containers/0/volumeMounts/{_index(pod['spec']['containers'][0]['volumeMounts'], 'model-cache')}"


# What the breaker does to a pod we injected, by the pod's label `break`; what our denial says.
BREAKS: dict[str, tuple[Any, str]] = {
    "volume-removed": (lambda pod: [{"op": "remove", "path": f"/spec/volumes/{_index(pod['spec']['volumes'], 'model-cache')}"},
                                    {"op": "remove", "path": _mount(pod)}],
                       "but has no volume model-cache (removed by a later webhook?)"),
    "mount-removed": (lambda pod: [{"op": "remove", "path": _mount(pod)}],
                      "but no container mounts volume model-cache (removed by a later webhook?)"),
    "mount-writable": (lambda pod: [{"op": "replace", "path": _mount(pod) + "/readOnly", "value": False}],
                       "container server mounts volume model-cache writable at /model-cache, not read-only"),
    "mount-moved": (lambda pod: [{"op": "replace", "path": _mount(pod) + "/mountPath", "value": "/data"}],
                    "container server mounts volume model-cache at /data, not at /model-cache"),
    "conflicting-mount": (lambda pod: [{"op": "add", "path": "/spec/volumes/-", "value": {"name": "scratch", "emptyDir": {}}},
                                       {"op": "add", "path": "/spec/containers/0/volumeMounts/-",
                                        "value": {"name": "scratch", "mountPath": "/model-cache"}}],
                          "container server mounts volume scratch at /model-cache, where model-cache mounted model"),
    "downloader-removed": (lambda pod: [{"op": "remove", "path": "/spec/initContainers/"
                                         f"{_index(pod['spec']['initContainers'], 'model-cache-download')}"}],
                           "uses strategy memory but the pod has no init container model-cache-download"),
}


class Breaker(LoopbackWebhook):
    """Another team's mutating webhook, run after ours, that undoes part of
    what we injected (the change its pod's label `break` names)."""

    def __init__(self, certs: Path) -> None:
        super().__init__(certs, self._break)

    def _break(self, request: dict[str, Any]) -> dict[str, Any]:
        pod = request["object"]
        case = pod["metadata"].get("labels", {}).get("break", "")
        if case == "probe":
            patch = [{"op": "add", "path": "/metadata/labels/seen-by-breaker", "value": "yes"}]
        elif case in BREAKS and "model.cache/injected" in (pod["metadata"].get("annotations") or {}):
            patch = BREAKS[case][0](pod)
        else:
            return {}
        return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}


@pytest.fixture(scope="module")
def breaker(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Breaker]:
    hook = Breaker(tmp_path_factory.mktemp("breaker-certs"))
    adm = k8s.AdmissionregistrationV1Api(control_plane.api_client())
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "zz-breaker"},  # after ours: configurations are called in the order of their names
        "webhooks": [{
            "name": "break.other.example.com", "admissionReviewVersions": ["v1"],
            "clientConfig": hook.client_config("/mutate"),
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
            "objectSelector": {"matchExpressions": [{"key": "break", "operator": "Exists"}]},
            "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
        }],
    }
    adm.create_mutating_webhook_configuration(config)
    probe = simple_pod("break-probe")
    probe["metadata"]["labels"] = {"break": "probe"}
    wait_for("the breaker in force", lambda: json.loads(control_plane.core.create_namespaced_pod(
        "denials", probe, dry_run="All", _preload_content=False).data)["metadata"]["labels"].get("seen-by-breaker"),
             timeout=30)
    try:
        yield hook
    finally:
        adm.delete_mutating_webhook_configuration("zz-breaker")
        hook.close()


def _owned(pod: dict[str, Any]) -> dict[str, Any]:
    """POD as the ReplicaSet controller would create it (a ReplicaSet that does not
    exist: the pod is refused anyway, or collected by the garbage collector)."""
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "broken-rs",
                                           "uid": "0f1e2d3c-0000-4000-8000-00000000b2e4", "controller": True}]
    return pod


@pytest.mark.parametrize("case", list(BREAKS))
@pytest.mark.parametrize("owner", ["replicaset", "bare"])
def test_what_a_later_webhook_breaks_is_refused_by_our_reinvocation(
        webhook: Webhook, control_plane: ControlPlane, breaker: Breaker, case: str, owner: str) -> None:
    """What the pod-level /validate caught (our volume or mount removed, the memory
    volume's downloader removed) and what it did not (a mount made writable or
    moved, another volume at the model's path) is refused by /mutate, called again
    after the breaker's change: for a ReplicaSet's pod, which never reaches
    /validate, as for a bare one."""
    cp = control_plane
    model = "tiny-memory" if case == "downloader-removed" else "tiny"
    pod = simple_pod(f"broken-{case}-{owner}", {"model.cache/name": model})
    pod["metadata"]["labels"] = {"break": case}
    if owner == "replicaset":
        _owned(pod)
    validates = webhook.reviews("validate")
    with pytest.raises(ApiException) as err:
        cp.core.create_namespaced_pod("denials", pod)
    text = json.loads(err.value.body)["message"]
    assert text.startswith('admission webhook "pods.mutate.model.cache" denied the request: '), text
    assert BREAKS[case][1] in text, text
    assert webhook.reviews("validate") == validates  # refused before any validating webhook
    # The same pod without the breaker's label is created injected: the denial was about its change.
    del pod["metadata"]["labels"]
    stored, _ = created_with_headers(cp.api_client(), "denials", pod)
    assert stored["metadata"]["annotations"]["model.cache/injected"].startswith(("pvc/", "memory/"))
