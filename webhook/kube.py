"""The kubernetes client's configuration and what its failures mean, in one place.

Two parts of the webhook talk to the API server: the certificate manager
(Secrets, webhook configurations) and the validating half's lookups (PVCs,
Secrets' key names, namespaces). Both find their credentials the same way and
read a failed call the same way, here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from webhook import version
from webhook.errors import KubeConfigError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def load_configuration(env: Mapping[str, str] = os.environ) -> k8s.Configuration | None:
    """The client configuration, from the first of: MODEL_CACHE_KUBECONFIG, the
    pod's ServiceAccount (in a cluster), KUBECONFIG, ~/.kube/config. None when
    there is none of them; KubeConfigError when the one found cannot be used."""
    cfg = k8s.Configuration()
    explicit = env.get("MODEL_CACHE_KUBECONFIG")
    source = explicit
    try:
        if explicit:
            k8s_config.load_kube_config(config_file=explicit, client_configuration=cfg, persist_config=False)
            return _harden(cfg)
        if env.get("KUBERNETES_SERVICE_HOST"):
            source = "the pod's ServiceAccount"
            k8s_config.load_incluster_config(client_configuration=cfg)
            return _harden(cfg)
        default = env.get("KUBECONFIG") or str(Path(env.get("HOME") or Path.home()) / ".kube" / "config")
        if env.get("KUBECONFIG") or Path(default).is_file():
            source = default
            k8s_config.load_kube_config(config_file=default, client_configuration=cfg, persist_config=False)
            return _harden(cfg)
    except (ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as err:
        raise KubeConfigError(
            f"cannot load the kubernetes client configuration from {source}: {err}; "
            "fix that file, or point MODEL_CACHE_KUBECONFIG at a working kubeconfig"
        ) from None
    return None


def api_client(configuration: k8s.Configuration) -> k8s.ApiClient:
    """A client that says who it is: the API server names the field manager of
    our writes, and the audit log's user agent, after it (not OpenAPI-Generator)."""
    client = k8s.ApiClient(configuration)
    client.user_agent = f"model-cache/{version()}"
    return client


def _harden(cfg: k8s.Configuration) -> k8s.Configuration:
    # urllib3's default is 3 retries with redirects: each a full timeout. One retry
    # covers a pooled keep-alive connection the API server closed meanwhile.
    cfg.retries = urllib3.Retry(total=1, connect=1, read=1, redirect=0, status=0, other=0)
    cfg.connection_pool_maxsize = 8
    return cfg


FailureKind = Literal["missing", "conflict", "unauthorized", "forbidden", "tls", "unreachable", "server", "unreadable"]


@dataclass(frozen=True)
class ApiFailure:
    """A failed API call, read once: what kind of failure and a one-line reason."""

    kind: FailureKind
    status: int | None
    reason: str  # the HTTP reason phrase, or what went wrong on the way
    message: str = ""  # the Status message the API server sent, where it sent one

    @property
    def transport(self) -> bool:
        """The API server could not be talked to at all (a breaker's business)."""
        return self.kind in ("tls", "unreachable")


def read_failure(err: BaseException) -> ApiFailure | None:
    """What ERR, raised by a kubernetes client call, means; None for an error
    that is not the API server's (a bug, to be raised on)."""
    if isinstance(err, ApiException):
        status = err.status
        if status == 0:  # the client reports a TLS failure as status 0
            return ApiFailure("tls", None, f"TLS error: {first_line(err.reason)}", first_line(err.reason))
        kind: FailureKind = {404: "missing", 409: "conflict", 401: "unauthorized", 403: "forbidden"}.get(
            status or -1, "server")  # type: ignore[assignment]
        return ApiFailure(kind, status, first_line(err.reason), _message(err))
    if isinstance(err, (urllib3.exceptions.HTTPError, OSError)):
        reason = transport_reason(err)
        return ApiFailure("unreachable", None, reason, reason)
    if isinstance(err, ValueError):  # not JSON: a proxy's error page, a truncated body
        return ApiFailure("unreadable", None, "an unreadable answer", "an unreadable answer")
    return None


def _message(err: ApiException) -> str:
    """The Status message the API server sent, else the HTTP reason."""
    try:
        body: Any = json.loads(err.body or "{}")
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return first_line(message or err.reason)


def first_line(text: Any, limit: int = 200) -> str:
    text = str(text or "").strip()
    return text.splitlines()[0][:limit] if text else "unknown"


def transport_reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(reason, urllib3.exceptions.ProtocolError) or "RemoteDisconnected" in repr(reason):
        return "connection dropped"
    if isinstance(reason, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
        return "connection refused"
    return type(reason).__name__
