"""Pods through the real API server's admission chain (ServiceAccount,
PodSecurity, Priority, the two webhook plugins, Pod validation) with
model-cache installed from manifests/."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from tests.apiserver.controlplane import ControlPlane, wait_for
from tests.apiserver.pods import annotated_deployment, created_with_headers, simple_pod, warnings_of
from tests.apiserver.served import Webhook

MUTATE_DENIED = 'admission webhook "pods.mutate.model.cache" denied the request: '

STRATEGIES = {  # model of the test policy -> its strategy
    "tiny": "pvc",
    "tiny-hostpath": "hostpath",
    "tiny-memory": "memory",
    "tiny-oci": "oci",
    "tiny-image": "image",
}


def create(cp: ControlPlane, namespace: str, pod: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return created_with_headers(cp.api_client(), namespace, pod)


def read_pod(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cp.core.read_namespaced_pod(name, namespace, _preload_content=False).data)


def refused(cp: ControlPlane, namespace: str, pod: dict[str, Any]) -> ApiException:
    with pytest.raises(ApiException) as err:
        cp.core.create_namespaced_pod(namespace, pod)
    with pytest.raises(ApiException) as gone:
        cp.core.read_namespaced_pod(pod["metadata"]["name"], namespace)
    assert gone.value.status == 404
    return err.value


def message(err: ApiException) -> str:
    return json.loads(err.body)["message"]


def check_injected(pod: dict[str, Any], strategy: str) -> None:
    assert pod["metadata"]["annotations"]["model.cache/injected"].startswith(f"{strategy}/")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    cache = volumes["model-cache"]
    init = [c["name"] for c in pod["spec"].get("initContainers", [])]
    if strategy == "pvc":
        assert cache["persistentVolumeClaim"]["claimName"] == "models"
    elif strategy == "hostpath":
        assert cache["hostPath"] == {"path": "/var/lib/model-cache-test", "type": "DirectoryOrCreate"}
    elif strategy == "memory":
        assert cache["emptyDir"]["medium"] == "Memory"
    elif strategy == "oci":
        assert "emptyDir" in cache and "model-cache-oci-copy" in init
    elif strategy == "image":
        assert cache["image"]["reference"].startswith("ghcr.io/model-cache/tiny-model@sha256:")
    if strategy in ("pvc", "hostpath", "memory"):
        assert "model-cache-download" in init
    if strategy == "image":
        assert init == []
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["model-cache"]["readOnly"] is True and mounts["model-cache"]["mountPath"] == "/model-cache"
    assert volumes["model-cache-shm"]["emptyDir"]["medium"] == "Memory"
    # The ServiceAccount plugin ran before the webhook: its token volume sits beside ours.
    assert any(name.startswith("kube-api-access-") for name in volumes)


@pytest.mark.parametrize("model", list(STRATEGIES))
def test_every_strategy_is_stored_injected(webhook: Webhook, control_plane: ControlPlane, model: str) -> None:
    strategy = STRATEGIES[model]
    name = f"s-{strategy}"
    pod = simple_pod(name, {"model.cache/name": model})
    pod["spec"]["containers"][0]["env"] = [{"name": "HF_HUB_OFFLINE", "value": "0"}]  # the policy sets it too
    stored, warnings = create(control_plane, "strategies", pod)
    check_injected(stored, strategy)
    # The pod's own value wins and is not shadowed: the API server warns about a
    # duplicate env name ("hides previous definition"), and about any field of
    # ours it finds questionable, in a warning that starts with the field path.
    assert stored["spec"]["containers"][0]["env"] == [{"name": "HF_HUB_OFFLINE", "value": "0"},
                                                      {"name": "MODEL_CACHE_PATH", "value": "/model-cache"}]
    assert not [w for w in warnings if w.startswith("spec.") or "hides previous definition" in w], warnings
    assert read_pod(control_plane, "strategies", name)["spec"] == stored["spec"]
    if strategy == "memory":
        limits = stored["spec"]["containers"][0]["resources"]["limits"]
        assert parse_quantity(limits["memory"]) == parse_quantity("512Mi") + parse_quantity("1Mi")


def test_pods_that_do_not_ask_never_reach_the_webhook(webhook: Webhook, control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.namespace("kube-system")  # its default ServiceAccount, without waiting for the controller
    before = webhook.reviews()
    for i in range(3):
        stored, _ = create(cp, "plain", simple_pod(f"plain-{i}", {"other/annotation": "x"}))
        assert "model.cache/injected" not in stored["metadata"]["annotations"]
    # Annotated, but in namespaces the namespaceSelector leaves out.
    for ns in ("kube-system", "model-cache"):
        stored, _ = create(cp, ns, simple_pod("asks-elsewhere", {"model.cache/name": "tiny"}))
        assert "model.cache/injected" not in stored["metadata"]["annotations"]
    # A mirror pod (a kubelet's copy of a static pod) that asks: the second matchCondition.
    mirror = simple_pod("mirror", {"model.cache/name": "tiny", "kubernetes.io/config.mirror": "a1b2"}, nodeName="node-1")
    stored, _ = create(cp, "plain", mirror)
    assert "model.cache/injected" not in stored["metadata"]["annotations"]
    assert webhook.reviews() == before
    # The count does move when a pod asks.
    validate_before = webhook.reviews("validate")
    create(cp, "plain", simple_pod("asks", {"model.cache/name": "tiny"}))
    wait_for("one more /validate", lambda: webhook.reviews("validate") == validate_before + 1, timeout=10)
    assert webhook.reviews() >= before + 2


def test_an_annotated_pod_costs_one_mutate_and_one_validate_call(webhook: Webhook, control_plane: ControlPlane) -> None:
    """Our injected init containers mount an empty directory at the token
    path, so the in-tree ServiceAccount plugin, run again after our patch,
    adds nothing to them: nothing changed after us, so no reinvocation (it
    used to make a second /mutate call for every pod), and the downloader
    carries no API token it never uses."""
    def count(endpoint: str, result: str | None = None) -> float:
        return sum(v for (name, labels), v in webhook.metrics().items()
                   if name == "model_cache_reviews_total" and ("endpoint", endpoint) in labels
                   and (result is None or ("result", result) in labels))

    mutates, validates = count("mutate"), count("validate")
    mutated = count("mutate", "mutated")
    stored, _ = create(control_plane, "plain", simple_pod("one-call", {"model.cache/name": "tiny"}))
    # /validate comes after every mutating call (a reinvocation included).
    wait_for("the validating call counted", lambda: count("validate") == validates + 1, timeout=10)
    assert count("mutate") == mutates + 1, "the API server called /mutate again"
    assert count("mutate", "mutated") == mutated + 1
    init = stored["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["model-cache-download"]
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert {m["mountPath"]: m["name"] for m in init[0]["volumeMounts"]}[token] == "model-cache-no-token"
    server = stored["spec"]["containers"][0]
    assert {m["mountPath"]: m["name"] for m in server["volumeMounts"]}[token].startswith("kube-api-access-")


def test_a_deployments_pod_costs_one_call(webhook: Webhook, control_plane: ControlPlane) -> None:
    """Issue 30: a pod the ReplicaSet controller makes skips /validate (the
    matchCondition on its ownerReferences): its Deployment's template was
    checked at apply, its ReplicaSet (made by the Deployment) is not sent, and
    each pod costs one /mutate call. A bare pod still costs two."""
    cp = control_plane

    def count(endpoint: str) -> float:
        return webhook.reviews(endpoint)

    mutates, validates = count("mutate"), count("validate")
    k8s.AppsV1Api(cp.api_client()).create_namespaced_deployment(
        "deploy", annotated_deployment("one-call", "one-call", "tiny", replicas=3))

    def pods() -> list[dict[str, Any]]:
        items = json.loads(cp.core.list_namespaced_pod("deploy", label_selector="app=one-call",
                                                       _preload_content=False).data)["items"]
        return items if len(items) == 3 else []

    for pod in wait_for("3 pods of deployment one-call", pods, timeout=60, procs=tuple(cp.procs)):
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        check_injected(pod, "pvc")
    # A pod is stored after its last admission call: the counts are final.
    assert count("mutate") == mutates + 3
    assert count("validate") == validates + 1, "only the Deployment's template: no ReplicaSet, no pod"
    # A bare pod: /mutate, then /validate.
    create(cp, "deploy", simple_pod("one-call-bare", {"model.cache/name": "tiny"}))
    assert (count("mutate"), count("validate")) == (mutates + 4, validates + 2)


def test_warnings_come_back_as_warning_headers(webhook: Webhook, control_plane: ControlPlane) -> None:
    stored, warnings = create(control_plane, "warnings", simple_pod("w-memory", {"model.cache/name": "tiny-memory"}))
    assert stored["metadata"]["annotations"]["model.cache/injected"].startswith("memory/")
    assert any("tiny-memory" in w and "downloaded again on every pod start" in w for w in warnings), warnings
    # A PVC lookup under the shipped RBAC, with the webhook's ServiceAccount token.
    _, warnings = create(control_plane, "warnings", simple_pod("w-pvc", {"model.cache/name": "tiny"}))
    assert any(w.startswith("PVC models not found in namespace warnings") for w in warnings), warnings
    assert not [w for w in warnings if "could not check" in w], warnings


def test_warnings_reach_kubectl_for_a_pod_and_a_deployment(webhook: Webhook, control_plane: ControlPlane) -> None:
    pod = simple_pod("w-kubectl", {"model.cache/name": "tiny-memory"})
    out = control_plane.kubectl("-n", "warnings", "apply", "-f", "-", input=yaml.safe_dump(pod))
    assert "Warning: model tiny-memory (1Mi) uses strategy memory" in out.stderr, out.stderr
    deployment = annotated_deployment("w-deploy", "w", "tiny-memory", replicas=0)
    out = control_plane.kubectl("-n", "warnings", "apply", "-f", "-", input=yaml.safe_dump(deployment))
    assert "Warning: model tiny-memory (1Mi) uses strategy memory" in out.stderr, out.stderr


def test_a_denied_pod_is_refused_with_our_message(webhook: Webhook, control_plane: ControlPlane) -> None:
    err = refused(control_plane, "denials", simple_pod("d-unknown", {"model.cache/name": "gpt-5"}))
    assert err.status == 403
    assert message(err).startswith(MUTATE_DENIED + 'model "gpt-5" is not in the model-cache policy for namespace denials')


def _with_volume_named_model_cache() -> dict[str, Any]:
    pod = simple_pod("d-volume", {"model.cache/name": "tiny"})
    pod["spec"]["volumes"] = [{"name": "model-cache", "emptyDir": {}}]
    return pod


def _with_mount_at_model_cache() -> dict[str, Any]:
    pod = simple_pod("d-mount", {"model.cache/name": "tiny"})
    pod["spec"]["volumes"] = [{"name": "mine", "emptyDir": {}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "mine", "mountPath": "/model-cache"}]
    return pod


@pytest.mark.parametrize("make", [
    _with_volume_named_model_cache,
    _with_mount_at_model_cache,
    lambda: simple_pod("d-containers", {"model.cache/name": "tiny", "model.cache/containers": "server,nosuch"}),
    lambda: simple_pod("d-shm", {"model.cache/name": "tiny", "model.cache/shm-size": "lots"}),
    lambda: simple_pod("d-strategy", {"model.cache/name": "tiny", "model.cache/strategy": "s3"}),
    lambda: simple_pod("d-path", {"model.cache/name": "tiny", "model.cache/mount-path": "relative/path"}),
], ids=["volume-name", "mount-path", "containers-value", "shm-quantity", "strategy-value", "mount-path-value"])
def test_an_injection_the_api_server_would_reject_never_happens(webhook: Webhook, control_plane: ControlPlane,
                                                                 make: Any) -> None:
    """Duplicate names and bad values: our denial, never the API server's
    own Pod validation error on a half-injected pod."""
    err = refused(control_plane, "denials", make())
    text = message(err)
    assert text.startswith(MUTATE_DENIED), text
    assert "Invalid value" not in text and "Duplicate value" not in text, text


@pytest.mark.parametrize("model", ["tiny", "tiny-memory", "tiny-oci", "tiny-image"])
def test_what_we_inject_passes_the_restricted_level(webhook: Webhook, control_plane: ControlPlane, model: str) -> None:
    strategy = STRATEGIES[model]
    stored, warnings = create(control_plane, "restricted", simple_pod(f"r-{strategy}", {"model.cache/name": model}))
    check_injected(stored, strategy)
    assert not [w for w in warnings if "PodSecurity" in w], warnings


def test_the_restricted_level_is_really_enforced(webhook: Webhook, control_plane: ControlPlane) -> None:
    """The control for the test above: the same pod without its securityContext is refused."""
    pod = simple_pod("r-control", {"model.cache/name": "tiny"})
    del pod["spec"]["containers"][0]["securityContext"]
    err = refused(control_plane, "restricted", pod)
    assert 'violates PodSecurity "restricted:latest"' in message(err)


def test_hostpath_in_a_baseline_namespace_is_refused(webhook: Webhook, control_plane: ControlPlane) -> None:
    err = refused(control_plane, "baseline", simple_pod("b-hostpath", {"model.cache/name": "tiny-hostpath"}))
    text = message(err)
    # Refused by /mutate, before PodSecurity would have with its own words.
    assert "denied the request" in text and "forbids hostPath volumes" in text, text
    assert "violates PodSecurity" not in text, text
    # Other strategies pass the same namespace.
    stored, _ = create(control_plane, "baseline", simple_pod("b-pvc", {"model.cache/name": "tiny"}))
    check_injected(stored, "pvc")


def test_hostpath_in_a_baseline_namespace_is_refused_with_our_message(webhook: Webhook,
                                                                      control_plane: ControlPlane) -> None:
    """PodSecurity runs before the validating webhooks: /mutate must say it (it reads the namespace's label)."""
    err = refused(control_plane, "baseline", simple_pod("b-ours", {"model.cache/name": "tiny-hostpath"}))
    text = message(err)
    assert "model.cache" in text and "baseline" in text and "use strategy pvc" in text, text


def test_a_deployments_pods_come_out_injected(webhook: Webhook, control_plane: ControlPlane) -> None:
    """The ReplicaSet controller (kube-controller-manager) creates the pods: they go through the webhook too."""
    cp = control_plane
    deployment = annotated_deployment("served", "served", "tiny", replicas=2)
    k8s.AppsV1Api(cp.api_client()).create_namespaced_deployment("deploy", deployment)

    def pods() -> list[dict[str, Any]]:
        items = json.loads(cp.core.list_namespaced_pod("deploy", label_selector="app=served",
                                                       _preload_content=False).data)["items"]
        return items if len(items) == 2 else []

    for pod in wait_for("2 pods of deployment served", pods, timeout=60, procs=tuple(cp.procs)):
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        check_injected(pod, "pvc")


BAD_POLICY = """\
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
models:
  broken:
    source: hf://org/repo
    size: sixteen
"""


def policy_configmap(name: str, policy: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "model-cache", "labels": {"model.cache/policy": "true"}},
        "data": {"ml.yaml": policy},
    })


def test_a_policy_configmap_with_an_error_is_refused_at_kubectl_apply(webhook: Webhook,
                                                                      control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("apply", "-f", "-", input=policy_configmap("policy-edit", BAD_POLICY), check=False)
    assert out.returncode != 0
    assert 'admission webhook "policies.validate.model.cache" denied the request' in out.stderr, out.stderr
    assert "ml.yaml: models.broken.size" in out.stderr and "sixteen" in out.stderr, out.stderr
    good = BAD_POLICY.replace("sixteen", "16Gi")
    control_plane.kubectl("apply", "-f", "-", input=policy_configmap("policy-edit", good))


def test_a_template_warning_with_quotes_survives_the_warning_header(webhook: Webhook,
                                                                     control_plane: ControlPlane) -> None:
    """The API server re-quotes each warning into `299 - "..."`: a model name in
    quotes must come back intact, through the workloads webhook."""
    deployment = annotated_deployment("w-unknown", "u", "gpt-5", replicas=0)
    resp = k8s.AppsV1Api(control_plane.api_client()).create_namespaced_deployment(
        "warnings", deployment, _preload_content=False)
    warnings = warnings_of(resp.headers)
    assert any('model "gpt-5" is not in the model-cache policy for namespace warnings' in w for w in warnings), \
        warnings
    assert all(len(w) <= 256 for w in warnings), warnings  # what the API server keeps whole


def test_a_replicas_warning_is_an_event_on_its_replicaset(webhook: Webhook, control_plane: ControlPlane) -> None:
    """Namespace deploy has no PVC `models`: every replica gets the pvc-missing warning, which the
    ReplicaSet controller never shows anyone; the webhook writes it as one Event on the ReplicaSet,
    under the shipped RBAC, with its ServiceAccount's token."""
    cp = control_plane
    deployment = annotated_deployment("evented", "evented", "tiny", replicas=3)
    k8s.AppsV1Api(cp.api_client()).create_namespaced_deployment("deploy", deployment)
    events_api = k8s.EventsV1Api(cp.api_client())

    def ours() -> list[dict[str, Any]]:
        items = json.loads(events_api.list_namespaced_event("deploy", _preload_content=False).data)["items"]
        return [e for e in items if e.get("reason") == "ModelCacheWarning"
                and e["regarding"]["name"].startswith("evented-")]

    [event] = wait_for("an Event on the ReplicaSet of deployment evented", ours, timeout=60, procs=tuple(cp.procs))
    assert event["regarding"]["kind"] == "ReplicaSet" and event["type"] == "Warning"
    assert event["note"].startswith("PVC models not found in namespace deploy"), event["note"]
    assert event["reportingController"] == "model.cache/webhook"
    time.sleep(1)  # the other replicas' identical warnings: deduplicated, still one Event
    assert len(ours()) == 1
