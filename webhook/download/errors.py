"""The downloader's failures, each with its own exit code so that a pod's
status (`Init:Error`, exit code N) already says which kind it was.

Messages are one line and say what to do; cli.py prints them as
`model-cache: <message>` without a traceback.
"""

from __future__ import annotations

from webhook.errors import ModelCacheError, UsageError

__all__ = ["UsageError"]  # a bad --source, --dest or option value: the project's one usage error

# Exit codes (documented in docs/downloader.md). 2 is argparse's own.
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_DISK_FULL = 5
EXIT_CHECKSUM = 6
EXIT_NETWORK = 7
EXIT_LOCK = 8
EXIT_WONT_FIT = 9  # the volume is too small for the model even when empty: a restart cannot help
EXIT_ARCHIVE_BUDGET = 10  # an archive unpacks to more than the policy's size allows
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports


class DownloadError(ModelCacheError):
    """Base of the downloader's errors."""

    exit_code = EXIT_NETWORK


class AuthError(DownloadError):
    """The origin answered 401/403, or no credentials were found."""

    exit_code = EXIT_AUTH


class NotFoundError(DownloadError):
    """The model, revision, object or URL does not exist."""

    exit_code = EXIT_NOT_FOUND


class DiskFullError(DownloadError):
    """No space left for the model; the partial data is kept for a resume."""

    exit_code = EXIT_DISK_FULL


class WontFitError(DiskFullError):
    """The model can never fit on this volume, whatever is freed: only a
    larger volume (the policy's size) helps."""

    exit_code = EXIT_WONT_FIT


class ArchiveTooLarge(DownloadError):
    """An archive unpacks to more than the model's budget (the policy's
    size, with its slack): a bomb, or a size written too small. Nothing is
    published and what was unpacked is removed."""

    exit_code = EXIT_ARCHIVE_BUDGET


class WriteError(DownloadError):
    """The volume failed a write, an fsync or a preallocation (an I/O error,
    a read-only remount): the file is not published."""

    exit_code = EXIT_NETWORK


class ChecksumError(DownloadError):
    """A file's sha256 or size did not match, also after one more fetch."""

    exit_code = EXIT_CHECKSUM


class TransientError(DownloadError):
    """A failure worth retrying: a timeout, a reset connection, a 5xx or 429.
    `retry_after` is the origin's Retry-After in seconds, when it sent one."""

    exit_code = EXIT_NETWORK

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChangedError(DownloadError):
    """The object changed on the origin while (or since) we fetched parts of
    it: what we have must not be spliced with the new bytes."""

    exit_code = EXIT_NETWORK


class NetworkError(DownloadError):
    """The origin kept failing after every retry."""

    exit_code = EXIT_NETWORK


class LockLost(DownloadError):
    """Another downloader took our lock over (it judged us dead)."""

    exit_code = EXIT_LOCK


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException so that no `except Exception` in a
    library swallows it on its way up to the code that releases the lock."""


def secret_hint(var: str) -> str:
    """`set HF_TOKEN in Secret hf-token`, or a generic hint without a policy secret."""
    import os

    secret = os.environ.get("MODEL_CACHE_AUTH_SECRET", "").strip()
    if secret:
        return f"set {var} in Secret {secret} (the policy's authSecretName)"
    return f"set {var} (name a Secret holding it in the model's policy: authSecretName)"
