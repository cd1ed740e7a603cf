"""What every file of one download shares: the source, the partial directory,
progress, options, the retry policy, the cancel flag and the count of
checksum mismatches. Handed to the single-stream fetch (stream.py), to the
parted fetch (ranged.py) and to the scheduler that runs both (scheduler.py),
so that none of them reaches into another."""

from __future__ import annotations

import threading
from pathlib import Path

from webhook.download.errors import ChecksumError
from webhook.download.progress import Progress
from webhook.download.remote import SCRATCH, FetchOptions, RemoteFile, Source
from webhook.download.fetching.retry import RetryPolicy
from webhook.download.lines import emit


class Cancelled(Exception):
    """Another worker failed or a signal arrived: stop this one quietly."""


class Transfer:
    def __init__(self, source: Source, partial: Path, progress: Progress, opts: FetchOptions) -> None:
        self.source = source
        self.partial = partial
        self.scratch = partial / SCRATCH
        self.progress = progress
        self.opts = opts
        self.policy = RetryPolicy(opts.retries, opts.backoff)
        self._mismatches: dict[str, int] = {}
        self._mismatch_lock = threading.Lock()

    def final_path(self, f: RemoteFile) -> Path:
        return self.partial / f.path

    def incomplete_path(self, f: RemoteFile) -> Path:
        return self.scratch / "incomplete" / f.path

    def check_cancel(self) -> None:
        if self.opts.cancel.is_set():
            raise Cancelled()

    def checksum_mismatch(self, f: RemoteFile, digest: str | None, expected: str) -> None:
        """Counts a mismatch of `f`: the first is fetched once more (a line
        says so), the second raises: the origin itself is wrong."""
        with self._mismatch_lock:
            n = self._mismatches[f.path] = self._mismatches.get(f.path, 0) + 1
        if n >= 2:
            raise ChecksumError(
                f"{f.path}: checksum is {digest}, expected {expected} (fetched twice); "
                f"the origin serves different bytes than its checksum says: fix the file or the --sha256/policy value")
        emit(f"model-cache: {f.path}: checksum mismatch ({digest} != {expected}); fetching it once more")
