"""manifests/, as an operator applies it, accepted by a real API server: the
webhook configurations with their CEL matchConditions, RBAC, PDB,
the Deployment (whose pods the real controllers create under
the namespace's restricted Pod Security level)."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane, wait_for
from tests.apiserver.served import Webhook, render_overlay


def test_every_rendered_object_is_stored(webhook: Webhook, control_plane: ControlPlane) -> None:
    rendered = render_overlay(webhook.port)
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    got = json.loads(control_plane.kubectl("get", "-o", "json", "-f", "-", input=rendered).stdout)
    stored = {(o["kind"], o["metadata"]["name"]) for o in got["items"]}
    assert stored == {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ClusterRole", "Role",
            "PodDisruptionBudget", "Deployment", "ConfigMap"} <= {k for k, _ in stored}
    # Applying the same manifests again (an upgrade) is accepted as well.
    control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)


def test_the_match_conditions_were_compiled_by_the_api_server(webhook: Webhook, control_plane: ControlPlane) -> None:
    adm = k8s.AdmissionregistrationV1Api(control_plane.api_client())
    stored = adm.read_mutating_webhook_configuration("model-cache").webhooks[0]
    assert [c.name for c in stored.match_conditions] == ["asks-for-a-model", "not-a-mirror-pod"]
    # The same configuration with a CEL typo is refused: acceptance above means the CEL compiled.
    rendered = [d for d in yaml.safe_load_all(render_overlay(webhook.port)) if d]
    broken = next(d for d in rendered if d["kind"] == "MutatingWebhookConfiguration")
    broken["metadata"]["name"] = "model-cache-broken-cel"
    broken["webhooks"][0]["matchConditions"][0]["expression"] = (
        "has(object.metadata.annotations) and 'model.cache/name' in object.metadata.annotations")
    with pytest.raises(ApiException) as err:
        adm.create_mutating_webhook_configuration(broken, dry_run="All")
    assert err.value.status == 422
    assert "matchConditions[0].expression" in err.value.body and "compilation failed" in err.value.body


def test_the_webhooks_own_pods_meet_the_restricted_level(webhook: Webhook, control_plane: ControlPlane) -> None:
    """The Deployment's pods are created by the real ReplicaSet controller in a
    namespace that enforces restricted: they exist only if they meet it."""
    core = control_plane.core

    def pods() -> list[dict]:
        resp = core.list_namespaced_pod("model-cache", label_selector="app.kubernetes.io/name=model-cache",
                                        _preload_content=False)
        items = json.loads(resp.data)["items"]
        return items if len(items) >= 2 else []

    items = wait_for("2 pods of deployment model-cache", pods, timeout=60,
                     procs=tuple(control_plane.procs))
    for pod in items:
        assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
        assert pod["spec"]["priority"] == 2000000000  # the Priority plugin resolved the built-in class
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    events = json.loads(core.list_namespaced_event("model-cache", _preload_content=False).data)["items"]
    assert not [e for e in events if "violates PodSecurity" in (e.get("message") or "")]
