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
