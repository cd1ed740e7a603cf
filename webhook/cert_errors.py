"""Errors of self-managed certificates. Each names the object and the fix."""

from __future__ import annotations

from webhook.errors import ModelCacheError


class CertError(ModelCacheError):
    """Base of the certificate errors."""


class CertSecretInvalid(CertError):
    """The TLS Secret exists but cannot be used as it is."""

    def __init__(self, secret: str, problem: str) -> None:
        self.secret, self.problem = secret, problem
        super().__init__(f"Secret {secret}: {problem}; model-cache replaces it with a new CA")


class KubeAccessError(CertError):
    """The API server refused or failed a call the certificate manager needs."""

    def __init__(self, what: str, status: int | None, detail: str) -> None:
        self.what, self.status = what, status
        hint = ""
        if status == 403:
            hint = " (check the Role/ClusterRole of the model-cache ServiceAccount in manifests/)"
        elif status is None:
            hint = " (is the API server reachable from the pod?)"
        super().__init__(f"{what}: {status or 'no answer'} {detail}{hint}")


class CertConfigError(CertError):
    """A `model-cache serve` certificate option that cannot work."""
