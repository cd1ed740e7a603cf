"""The API calls of self-managed certificates, through the kubernetes client.

Objects travel as plain JSON dicts (`_preload_content=False`): the client's
model classes would drop fields they do not know. Every failure becomes a
KubeAccessError that says which call failed and why; 404 and 409 are answers
the callers act on, so they come back as values or specific exceptions.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from webhook import kube
from webhook.errors import Conflict, KubeAccessError

# Short: a hung API server must not stall the start of a replica for minutes.
TIMEOUT = (5.0, 10.0)


def api_client() -> client.ApiClient:
    """A client from webhook.kube's configuration (MODEL_CACHE_KUBECONFIG, the
    pod's ServiceAccount, KUBECONFIG, ~/.kube/config)."""
    configuration = kube.load_configuration()
    if configuration is None:
        raise KubeAccessError("loading the kubernetes client configuration", None,
                              "none found; outside a cluster set KUBECONFIG or MODEL_CACHE_KUBECONFIG")
    return kube.api_client(configuration)


def _call(what: str, method: Any, *args: Any, missing_ok: bool = False) -> dict[str, Any] | None:
    """One API call, its answer as a plain dict: None on 404 where MISSING_OK,
    Conflict on 409 (another replica got there first), KubeAccessError naming
    WHAT otherwise."""
    try:
        return _json(method(*args, _preload_content=False, _request_timeout=TIMEOUT))
    except Exception as err:  # noqa: BLE001 - read by kube.read_failure; anything else is re-raised
        failure = kube.read_failure(err)
        if failure is None:
            raise
        if failure.kind == "missing" and missing_ok:
            return None
        if failure.kind == "conflict":
            raise Conflict(failure.message) from err
        raise KubeAccessError(what, failure.status, failure.message) from err


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


@dataclass
class SecretStore:
    api: client.ApiClient
    namespace: str
    name: str

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def _call(self, action: str, method: Any, *args: Any, missing_ok: bool = False) -> dict[str, Any] | None:
        return _call(f"{action} Secret {self.namespace}/{self.name}", method, *args, missing_ok=missing_ok)

    def get(self) -> dict[str, Any] | None:
        """The Secret, or None when it does not exist."""
        return self._call("reading", self._core.read_namespaced_secret, self.name, self.namespace, missing_ok=True)

    def create(self, secret: dict[str, Any]) -> dict[str, Any]:
        """Creates the Secret; Conflict when it exists (another replica won)."""
        created = self._call("creating", self._core.create_namespaced_secret, self.namespace, secret)
        assert created is not None  # a 404 raised: missing_ok is off
        return created

    def replace(self, secret: dict[str, Any]) -> dict[str, Any]:
        """Updates the Secret; with metadata.resourceVersion set, Conflict when
        someone else changed it since (optimistic concurrency between replicas)."""
        replaced = self._call("updating", self._core.replace_namespaced_secret, self.name, self.namespace,
                              secret)
        assert replaced is not None  # a 404 raised: missing_ok is off
        return replaced


@dataclass(frozen=True)
class WebhookConfigRef:
    kind: str  # "mutating" or "validating"
    name: str

    @property
    def title(self) -> str:
        return f"{self.kind.capitalize()}WebhookConfiguration {self.name}"


def parse_config_refs(text: str) -> tuple[WebhookConfigRef, ...]:
    """`mutating:NAME,validating:NAME` -> refs; "" -> none."""
    refs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, name = item.partition(":")
        if not sep or kind not in ("mutating", "validating") or not name:
            raise ValueError(f"{item!r}: expected mutating:NAME or validating:NAME")
        refs.append(WebhookConfigRef(kind, name))
    return tuple(refs)


def ca_bundle_patch(config_obj: dict[str, Any], bundle_pem: bytes) -> list[dict[str, Any]]:
    """JSON patch operations that set the caBundle of every webhook in
    CONFIG_OBJ to BUNDLE_PEM; [] when all carry it already. `add` both sets a
    missing member and replaces an existing one. All our webhooks get the same
    bundle, so a reordering between read and patch cannot misplace one."""
    want = base64.b64encode(bundle_pem).decode("ascii")
    ops = []
    for i, hook in enumerate(config_obj.get("webhooks") or []):
        if (hook.get("clientConfig") or {}).get("caBundle") != want:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": want})
    return ops


@dataclass
class WebhookConfigs:
    api: client.ApiClient

    def _call(self, ref: WebhookConfigRef, verb: str, *args: Any) -> dict[str, Any] | None:
        api = client.AdmissionregistrationV1Api(self.api)
        method = getattr(api, f"{verb}_{ref.kind}_webhook_configuration")
        return _call(f"{verb} {ref.title}", method, ref.name, *args, missing_ok=True)

    def get(self, ref: WebhookConfigRef) -> dict[str, Any] | None:
        return self._call(ref, "read")

    def ensure_ca_bundle(self, ref: WebhookConfigRef, bundle_pem: bytes) -> str:
        """Patches the bundle in where it differs. Returns "ok" (already
        there), "set" (there was none: a fresh install), "patched" (there was
        another) or "missing" (no such configuration yet)."""
        obj = self.get(ref)
        if obj is None:
            return "missing"
        ops = ca_bundle_patch(obj, bundle_pem)
        if not ops:
            return "ok"
        fresh = not any((h.get("clientConfig") or {}).get("caBundle") for h in obj.get("webhooks") or [])
        if self._call(ref, "patch", ops) is None:
            return "missing"
        return "set" if fresh else "patched"
