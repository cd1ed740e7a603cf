"""Self-managed certificates against the real API server and the shipped RBAC:
the webhook runs with a token of its ServiceAccount (TokenRequest API), creates
its Secret, patches the caBundle, and can do nothing more."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane, wait_for
from tests.apiserver.served import Webhook

SA = "system:serviceaccount:model-cache:model-cache"


def test_the_webhook_created_its_secret_and_patched_every_cabundle(webhook: Webhook,
                                                                    control_plane: ControlPlane) -> None:
    secret = control_plane.core.read_namespaced_secret("model-cache-tls", "model-cache")
    ca = base64.b64decode(secret.data["ca.crt"])
    assert b"BEGIN CERTIFICATE" in ca
    # The file the webhook serves from came from that Secret.
    assert webhook.cafile.read_bytes().strip() in ca or ca.strip() in webhook.cafile.read_bytes()
    adm = k8s.AdmissionregistrationV1Api(control_plane.api_client())
    hooks = (adm.read_mutating_webhook_configuration("model-cache").webhooks
             + adm.read_validating_webhook_configuration("model-cache").webhooks)
    assert len(hooks) == 4
    for hook in hooks:
        assert base64.b64decode(hook.client_config.ca_bundle).strip() == ca.strip(), hook.name


def test_the_secret_and_the_patches_came_from_the_service_account(webhook: Webhook,
                                                                  control_plane: ControlPlane) -> None:
    """The API server's audit log: who created the Secret and patched the caBundles, and with what answer."""
    by_sa = [e for e in control_plane.audit_events() if e["user"]["username"] == SA]
    created = [e for e in by_sa if e["verb"] == "create" and e["objectRef"]["resource"] == "secrets"]
    assert [(e["objectRef"]["namespace"], e["objectRef"].get("name"), e["responseStatus"]["code"]) for e in created] \
        == [("model-cache", "model-cache-tls", 201)]
    patched = {e["objectRef"]["resource"] for e in by_sa if e["verb"] == "patch"
               and e["objectRef"].get("name") == "model-cache" and e["responseStatus"]["code"] == 200}
    assert patched == {"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}
    # None of its calls was refused: the shipped RBAC covers every call it makes (the
    # list and delete that another test makes with the same token on purpose aside).
    refused = [(e["verb"], e["objectRef"]["resource"]) for e in by_sa
               if e["responseStatus"]["code"] == 403 and e["verb"] in ("get", "create", "update", "patch")]
    assert refused == []
    # It says who it is: the user agent the audit log records and the field manager of the Secret.
    assert {e["userAgent"].split("/")[0] for e in created + [e for e in by_sa if e["verb"] == "patch"]} == {"model-cache"}
    secret = json.loads(control_plane.core.read_namespaced_secret("model-cache-tls", "model-cache",
                                                                  _preload_content=False).data)
    assert {f["manager"] for f in secret["metadata"]["managedFields"]} == {"model-cache"}


def test_a_blanked_cabundle_is_patched_back(webhook: Webhook, control_plane: ControlPlane) -> None:
    adm = k8s.AdmissionregistrationV1Api(control_plane.api_client())
    want = adm.read_mutating_webhook_configuration("model-cache").webhooks[0].client_config.ca_bundle
    adm.patch_mutating_webhook_configuration(
        "model-cache", [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}])
    wait_for("caBundle patched back", lambda: adm.read_mutating_webhook_configuration("model-cache")
             .webhooks[0].client_config.ca_bundle == want, timeout=30, procs=(webhook.proc,) if webhook.proc else ())


def can_i(cp: ControlPlane, webhook: Webhook, *args: str) -> bool:
    out = cp.kubectl("auth", "can-i", *args, kubeconfig=webhook.sa_kubeconfig, check=False)
    return out.stdout.strip() == "yes"


@pytest.mark.parametrize(("verb", "target", "allowed"), [
    ("get", ("secrets/model-cache-tls", "-n", "model-cache"), True),
    ("update", ("secrets/model-cache-tls", "-n", "model-cache"), True),
    ("create", ("secrets", "-n", "model-cache"), True),
    ("patch", ("mutatingwebhookconfigurations/model-cache",), True),
    ("patch", ("validatingwebhookconfigurations/model-cache",), True),
    ("get", ("persistentvolumeclaims/any", "-n", "default"), True),
    # Nothing more:
    ("list", ("secrets", "-n", "model-cache"), False),
    ("watch", ("secrets", "-n", "model-cache"), False),
    ("delete", ("secrets/model-cache-tls", "-n", "model-cache"), False),
    ("update", ("secrets/other", "-n", "model-cache"), False),
    ("create", ("secrets", "-n", "default"), False),
    ("patch", ("mutatingwebhookconfigurations/other",), False),
    ("create", ("mutatingwebhookconfigurations",), False),
    ("delete", ("mutatingwebhookconfigurations/model-cache",), False),
    ("list", ("persistentvolumeclaims", "-n", "default"), False),
    ("create", ("pods", "-n", "default"), False),
], ids=lambda v: v if isinstance(v, str) else "/".join(v) if isinstance(v, tuple) else str(v))
def test_the_service_account_may_do_what_it_needs_and_nothing_more(webhook: Webhook, control_plane: ControlPlane,
                                                                   verb: str, target: tuple[str, ...],
                                                                   allowed: bool) -> None:
    assert can_i(control_plane, webhook, verb, *target) is allowed


def test_a_forbidden_call_with_the_webhooks_token_is_refused(webhook: Webhook, control_plane: ControlPlane) -> None:
    core = k8s.CoreV1Api(control_plane.api_client(webhook.sa_kubeconfig))
    with pytest.raises(ApiException) as err:
        core.list_namespaced_secret("model-cache")
    assert err.value.status == 403
    assert f'User "{SA}" cannot list resource "secrets"' in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_secret("model-cache-tls", "model-cache")
    assert err.value.status == 403
    assert core.read_namespaced_secret("model-cache-tls", "model-cache").metadata.name == "model-cache-tls"
