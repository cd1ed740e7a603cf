"""Every exception this project raises on purpose, in one tree.

Each is caught at the edge (the admission handler, the CLI, the server's
start-up) and turned into a message that names the problem and the fix.
The downloader's errors (download/errors.py) hang from ModelCacheError too,
each with its own exit code.
"""

from __future__ import annotations


# The command line's exit codes (docs/cli.md), so that CI can tell a finding
# from a mistake in the command from a tool that could not get an answer.
EXIT_FINDINGS = 1  # denied, missed, invalid; a policy error; a warning under --strict
EXIT_USAGE = 2  # the command line or its input files: argparse's own code
EXIT_RUNTIME = 3  # no kubeconfig, the API server unreachable or refusing


class ModelCacheError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code: int = EXIT_FINDINGS


# --- policies --------------------------------------------------------------------


class PolicyError(ModelCacheError):
    """A policy file that cannot be read or does not validate."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))


# --- admission -------------------------------------------------------------------


class Denied(ModelCacheError):
    """A pod the webhook cannot serve as asked; the message goes back to kubectl."""


class AnnotationError(Denied):
    """A model.cache/* annotation with a bad value."""


class MalformedReview(ModelCacheError):
    """An AdmissionReview that is not one; answered with HTTP 400."""

    status = 400


class TooLarge(MalformedReview):
    """A request body over the cap; answered with HTTP 413."""

    status = 413


class QuantityError(ModelCacheError, ValueError):
    """A string that is not a Kubernetes quantity the API server would accept."""


# --- the command line and the server ---------------------------------------------


class UsageError(ModelCacheError):
    """A command-line option or input file that cannot work."""

    exit_code = EXIT_USAGE


class ServeError(UsageError):
    """`model-cache serve` cannot start as asked."""


# --- the API server --------------------------------------------------------------


class RuntimeFailure(ModelCacheError):
    """The command was right, but the tool could not get its answer."""

    exit_code = EXIT_RUNTIME


class KubeConfigError(RuntimeFailure):
    """No usable kubernetes client configuration."""


class KubeAccessError(RuntimeFailure):
    """The API server refused or failed a call the webhook needs."""

    def __init__(self, what: str, status: int | None, detail: str) -> None:
        self.what, self.status = what, status
        hint = ""
        if status == 403:
            hint = " (check the Role/ClusterRole of the model-cache ServiceAccount in manifests/)"
        elif status is None:
            hint = " (is the API server reachable from the pod?)"
        super().__init__(f"{what}: {status or 'no answer'} {detail}{hint}")


class Conflict(ModelCacheError):
    """409: the object exists already (create) or changed since it was read (update)."""


# --- certificates ----------------------------------------------------------------


class CertError(ModelCacheError):
    """Base of the certificate errors."""


class CertSecretInvalid(CertError):
    """The TLS Secret exists but cannot be used as it is."""

    def __init__(self, secret: str, problem: str) -> None:
        self.secret, self.problem = secret, problem
        super().__init__(f"Secret {secret}: {problem}; model-cache replaces it with a new CA")


class CertConfigError(CertError):
    """A `model-cache serve` certificate option that cannot work."""
