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
from webhook.errors import KubeConfigError, UsageError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


IN_CLUSTER_NAMESPACE = IN_CLUSTER_TOKEN.parent / "namespace"
IN_CLUSTER = "the pod's ServiceAccount"


def kubeconfig_source(env: Mapping[str, str] = os.environ, kubeconfig: str | None = None) -> str | None:
    """Where the client's configuration comes from, the first of: KUBECONFIG
    (the --kubeconfig option), MODEL_CACHE_KUBECONFIG, the pod's ServiceAccount
    (IN_CLUSTER), the KUBECONFIG variable (a file or a list of them, as
    kubectl reads it), ~/.kube/config. None when there is none of them."""
    explicit = kubeconfig or env.get("MODEL_CACHE_KUBECONFIG")
    if explicit:
        return explicit
    if env.get("KUBERNETES_SERVICE_HOST"):
        return IN_CLUSTER
    if env.get("KUBECONFIG"):
        return env["KUBECONFIG"]
    default = Path(env.get("HOME") or Path.home()) / ".kube" / "config"
    return str(default) if default.is_file() else None


def load_configuration(env: Mapping[str, str] = os.environ, kubeconfig: str | None = None,
                       context: str | None = None) -> k8s.Configuration | None:
    """The client configuration from kubeconfig_source, with CONTEXT (kubectl's
    --context) instead of the file's current one. None when there is none;
    KubeConfigError when the one found cannot be used."""
    source = kubeconfig_source(env, kubeconfig)
    if source is None:
        if context:
            raise KubeConfigError(f"--context {context}: no kubeconfig found; pass --kubeconfig FILE or set KUBECONFIG")
        return None
    cfg = k8s.Configuration()
    try:
        if source == IN_CLUSTER and not context:
            k8s_config.load_incluster_config(client_configuration=cfg)
            return _harden(cfg)
        _check_context(source, context)
        k8s_config.load_kube_config(config_file=source, context=context, client_configuration=cfg,
                                    persist_config=False)
        return _harden(cfg)
    except (ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as err:
        raise KubeConfigError(
            f"cannot load the kubernetes client configuration from {source}: {err}; "
            "fix that file, or pass --kubeconfig FILE (MODEL_CACHE_KUBECONFIG) naming a working one"
        ) from None


def context_namespace(env: Mapping[str, str] = os.environ, kubeconfig: str | None = None,
                      context: str | None = None) -> str | None:
    """The namespace kubectl would use with no -n: the context's (CONTEXT, else
    the current one), in a pod its ServiceAccount's; None when none is set."""
    source = kubeconfig_source(env, kubeconfig)
    if source is None:
        if context:
            raise KubeConfigError(f"--context {context}: no kubeconfig found; pass --kubeconfig FILE or set KUBECONFIG")
        return None
    try:
        if source == IN_CLUSTER and not context:
            if not IN_CLUSTER_NAMESPACE.is_file():
                return None
            return IN_CLUSTER_NAMESPACE.read_text().strip() or None
        contexts, current = _check_context(source, context)
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
        return ((chosen or {}).get("context") or {}).get("namespace") or None
    except (ConfigException, OSError, ValueError, TypeError, AttributeError, yaml.YAMLError) as err:
        raise KubeConfigError(f"cannot read the kubeconfig {source}: {err}; fix that file, or pass --kubeconfig FILE") from None


def _check_context(source: str, context: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The contexts of SOURCE and its current one; KubeConfigError naming the
    ones there are when CONTEXT is not among them."""
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=source)
    except ConfigException:
        if context:
            raise
        return [], {}  # no contexts, or no current one: load_kube_config says what is wrong
    if context and context not in [c.get("name") for c in contexts]:
        names = ", ".join(str(c.get("name")) for c in contexts) or "none"
        raise UsageError(f"--context {context}: no such context in {source}; its contexts: {names}")
    return contexts, current or {}


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
