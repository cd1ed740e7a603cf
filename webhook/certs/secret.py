"""The certificate state as a Kubernetes Secret, and back.

The Secret is of type kubernetes.io/tls (tls.crt, tls.key: what any tool
expects) plus the keys rotation needs: ca.crt and ca.key (the signing CA),
ca-bundle.crt (every CA the API server must trust) and, during a roll-over,
next-ca.crt and next-ca.key. Secrets are plain JSON dicts here, as the API
server sends them.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from webhook.certs import x509
from webhook.errors import CertSecretInvalid
from webhook.certs.rotation import CertState
from webhook.certs.x509 import CertPair

SECRET_TYPE = "kubernetes.io/tls"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "model-cache"

TLS_CRT, TLS_KEY = "tls.crt", "tls.key"
CA_CRT, CA_KEY, BUNDLE = "ca.crt", "ca.key", "ca-bundle.crt"
NEXT_CRT, NEXT_KEY = "next-ca.crt", "next-ca.key"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def secret_data(state: CertState) -> dict[str, str]:
    data = {
        TLS_CRT: state.serving.cert_pem,
        TLS_KEY: state.serving.key_pem,
        CA_CRT: state.ca.cert_pem,
        CA_KEY: state.ca.key_pem,
        BUNDLE: state.bundle_pem,
    }
    if state.next_ca is not None:
        data[NEXT_CRT] = state.next_ca.cert_pem
        data[NEXT_KEY] = state.next_ca.key_pem
    return {k: _b64(v) for k, v in data.items()}


def build_secret(name: str, namespace: str, state: CertState, resource_version: str | None = None) -> dict[str, Any]:
    """The Secret for STATE; with RESOURCE_VERSION it is an update that fails
    with 409 if someone else changed the Secret since it was read."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": SECRET_TYPE,
        "data": secret_data(state),
    }


def state_from_secret(secret: dict[str, Any]) -> CertState:
    """The state a Secret holds, or CertSecretInvalid naming what is wrong."""
    name = secret.get("metadata", {}).get("name", "?")
    raw = secret.get("data") or {}
    missing = [k for k in (TLS_CRT, TLS_KEY, CA_CRT, CA_KEY) if k not in raw]
    if missing:
        raise CertSecretInvalid(name, f"keys {', '.join(missing)} are missing")
    try:
        data = {k: base64.b64decode(v, validate=True) for k, v in raw.items()}
        ca = CertPair(data[CA_CRT], data[CA_KEY])
        serving = CertPair(data[TLS_CRT], data[TLS_KEY])
        next_ca = CertPair(data[NEXT_CRT], data[NEXT_KEY]) if NEXT_CRT in data and NEXT_KEY in data else None
        for pair in (ca, serving, next_ca):
            # Parse now, so a broken Secret fails here with a clear message
            # and not later inside the planner.
            if pair is not None and not pair.matches_key():
                raise CertSecretInvalid(name, "a certificate does not match its key")
        bundle = tuple(x509.split_bundle(data.get(BUNDLE, b"")))
    except CertSecretInvalid:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise CertSecretInvalid(name, f"unreadable certificate or key ({err})") from err
    return CertState(ca=ca, serving=serving, bundle=bundle, next_ca=next_ca)


def resource_version(secret: dict[str, Any]) -> str | None:
    return secret.get("metadata", {}).get("resourceVersion")
