"""The API calls of self-managed certificates, through the kubernetes client.

Objects travel as plain JSON dicts (`_preload_content=False`): the client's
model classes would drop fields they do not know. Every failure becomes a
KubeAccessError that says which call failed and why; 404 and 409 are answers
the callers act on, so they come back as values or specific exceptions.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from webhook.cert_errors import KubeAccessError

# Short: a hung API server must not stall the start of a replica for minutes.
TIMEOUT = (5.0, 10.0)


class Conflict(Exception):
    """409: the object exists already (create) or changed since it was read (update)."""


def api_client() -> client.ApiClient:
    """The same order as the validating half's lookups (cluster.py):
    MODEL_CACHE_KUBECONFIG, then the pod's ServiceAccount, then KUBECONFIG
    (local runs against a cluster, tests)."""
    explicit = os.environ.get("MODEL_CACHE_KUBECONFIG")
    if explicit:
        return config.new_client_from_config(config_file=explicit)
    if os.environ.get("KUBERNETES_SERVICE_HOST") or not os.environ.get("KUBECONFIG"):
        conf = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=conf)
        except config.ConfigException as err:
            raise KubeAccessError("loading the in-cluster configuration", None,
                                  f"{err}; outside a cluster set KUBECONFIG or MODEL_CACHE_KUBECONFIG") from err
        return client.ApiClient(conf)
    return config.new_client_from_config(config_file=os.environ["KUBECONFIG"])


def _secret_model(secret: dict[str, Any]) -> client.V1Secret:
    # A Secret we build ourselves: every field is one the model knows.
    model = client.V1Secret.from_dict(secret)
    if model is None:
        raise ValueError("empty Secret")
    return model


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


def _reason(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


@dataclass
class SecretStore:
    api: client.ApiClient
    namespace: str
    name: str

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def _call(self, action: str, method: Any, *args: Any, missing_ok: bool = False) -> dict[str, Any] | None:
        """One Secret call: None on 404 where MISSING_OK, Conflict on 409 (another
        replica got there first), KubeAccessError naming the action otherwise."""
        what = f"{action} Secret {self.namespace}/{self.name}"
        try:
            return _json(method(*args, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as err:
            if err.status == 404 and missing_ok:
                return None
            if err.status == 409:
                raise Conflict(_reason(err)) from err
            raise KubeAccessError(what, err.status, _reason(err)) from err
        except HTTPError as err:
            raise KubeAccessError(what, None, str(err)) from err

    def get(self) -> dict[str, Any] | None:
        """The Secret, or None when it does not exist."""
        return self._call("reading", self._core.read_namespaced_secret, self.name, self.namespace, missing_ok=True)

    def create(self, secret: dict[str, Any]) -> dict[str, Any]:
        """Creates the Secret; Conflict when it exists (another replica won)."""
        created = self._call("creating", self._core.create_namespaced_secret, self.namespace, _secret_model(secret))
        assert created is not None  # a 404 raised: missing_ok is off
        return created

    def replace(self, secret: dict[str, Any]) -> dict[str, Any]:
        """Updates the Secret; with metadata.resourceVersion set, Conflict when
        someone else changed it since (optimistic concurrency between replicas)."""
        replaced = self._call("updating", self._core.replace_namespaced_secret, self.name, self.namespace,
                              _secret_model(secret))
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
        try:
            return _json(method(ref.name, *args, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as err:
            if err.status == 404:
                return None
            raise KubeAccessError(f"{verb} {ref.title}", err.status, _reason(err)) from err
        except HTTPError as err:
            raise KubeAccessError(f"{verb} {ref.title}", None, str(err)) from err

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
