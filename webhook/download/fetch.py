"""The transfer engine shared by every source: stream each file into an
`.incomplete` file, resume it, verify it, fsync it and rename it to its final
name inside the partial directory. `--jobs` connections are shared by all
files; a large file is cut into ranged parts (parted.py) whose tasks go ahead
of the other files.

A file at its final name inside the partial directory is complete and
verified. A single-stream `.incomplete` file is resumed from its length; a
parted one from its part journal (parts.py). So a `kill -9` at any moment
loses at most the bytes that were in flight.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from webhook.download.errors import ChecksumError, NetworkError, TransientError
from webhook.download.fsutil import write_all
from webhook.download.progress import Progress
from webhook.download.retry import emit
from webhook.download.hashing import FSYNC_ABOVE, PIPE_HASH_ABOVE, WRITEBACK_EVERY, _HashPipe, _hash_prefix, _start_writeback
from webhook.download.remote import CHUNK, SCRATCH, Body, FetchOptions, FileRecord, RemoteFile, Source  # noqa: F401 - FetchOptions for callers

def backoff_delay(attempt: int, base: float, cap: float = 30.0) -> float:
    """Kept for callers of the old name; the policy lives in retry.py."""
    from webhook.download.retry import backoff_delay as delay

    return delay(attempt, base, cap)


class Fetcher:
    def __init__(self, source: Source, partial: Path, progress: Progress, opts: FetchOptions) -> None:
        self.source = source
        self.partial = partial
        self.scratch = partial / SCRATCH
        self.progress = progress
        self.opts = opts
        from webhook.download.retry import RetryPolicy

        self.policy = RetryPolicy(opts.retries, opts.backoff)
        self._mismatches: dict[str, int] = {}
        self._mismatch_lock = threading.Lock()

    def mismatch(self, path: str) -> int:
        """Counts a checksum mismatch of `path`; returns how many so far."""
        with self._mismatch_lock:
            self._mismatches[path] = self._mismatches.get(path, 0) + 1
            return self._mismatches[path]

    # -- one file ---------------------------------------------------------

    def fetch(self, f: RemoteFile) -> FileRecord:
        final = self.partial / f.path
        if final.is_file():
            size = final.stat().st_size
            if f.size is None or size == f.size:
                # Completed (and verified) by an earlier run: not fetched again.
                self.progress.add(size, fetched=False)
                self.progress.file_done()
                return FileRecord(f.path, size, f.sha256, f.etag)
            final.unlink()
        inc = self.scratch / "incomplete" / f.path
        inc.parent.mkdir(parents=True, exist_ok=True)
        mismatches = 0
        while True:
            size, digest = self._stream_to(f, inc)
            expected = f.expected_digest()
            if expected is None or digest == expected:
                break
            mismatches += 1
            self.progress.add(-size, fetched=False)
            inc.unlink()
            if mismatches >= 2:
                raise ChecksumError(
                    f"{f.path}: checksum is {digest}, expected {expected} (fetched twice); "
                    f"the origin serves different bytes than its checksum says: fix the file or the --sha256/policy value")
            emit(f"model-cache: {f.path}: checksum mismatch ({digest} != {expected}); fetching it once more")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(inc, final)
        try:
            os.unlink(str(inc) + ".validator")
        except FileNotFoundError:
            pass
        self.progress.file_done()
        return FileRecord(f.path, size, f.sha256.lower() if f.sha256 else None, f.etag)

    def _stream_to(self, f: RemoteFile, inc: Path) -> tuple[int, str | None]:
        """Fills `inc` to the end of the file; returns (size, sha256 or None)."""
        valfile = Path(str(inc) + ".validator")
        have = inc.stat().st_size if inc.exists() else 0
        if f.size is not None and have > f.size:
            have = 0
        validator = valfile.read_text() if (have and valfile.exists()) else None
        hasher = self._hasher(f)
        if hasher is not None and have:
            _hash_prefix(hasher, inc, have)
        self.progress.add(have, fetched=False)
        fd = os.open(inc, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, have)
            os.lseek(fd, have, os.SEEK_SET)
            failures = 0
            while f.size is None or have < f.size:
                self._check_cancel()
                try:
                    body = self.source.open(f, have, validator)
                    try:
                        if body.restarted and have:
                            # A 200 to our Range request: start over, never append.
                            os.ftruncate(fd, 0)
                            os.lseek(fd, 0, os.SEEK_SET)
                            self.progress.add(-have, fetched=False)
                            have = 0
                            if isinstance(hasher, _HashPipe):
                                hasher.close()
                            hasher = self._hasher(f)
                        if body.validator and body.validator != validator:
                            validator = body.validator
                            valfile.write_text(validator)
                        cancel = self.opts.cancel
                        synced = have
                        for chunk in body.chunks:
                            write_all(fd, chunk)
                            if hasher is not None:
                                hasher.update(chunk)
                            have += len(chunk)
                            if _start_writeback is not None and have - synced >= WRITEBACK_EVERY:
                                _start_writeback(fd, synced, have - synced)
                                synced = have
                            self.progress.add(len(chunk))
                            failures = 0  # bytes arrived: the retry budget starts again
                            if cancel.is_set():
                                self._check_cancel()
                    finally:
                        body.close()
                    if f.size is None:
                        break
                    if have < f.size:
                        raise TransientError(f"connection closed after {have} of {f.size} bytes")
                    if have > f.size:
                        raise ChecksumError(f"{f.path}: the origin sent {have} bytes, expected {f.size}")
                except TransientError as err:
                    failures += 1
                    if failures > self.opts.retries:
                        raise NetworkError(
                            f"{self.source.label}: {f.path}: {err}; gave up after {self.opts.retries} retries "
                            f"(the partial data is kept: a restart resumes)") from None
                    delay = self.policy.delay(failures, err)
                    emit(f"model-cache: {f.path}: {err}; retry {failures}/{self.opts.retries} in {delay:.1f}s")
                    if self.opts.cancel.wait(delay):
                        self._check_cancel()
            if f.size is None or f.size >= FSYNC_ABOVE:
                os.fsync(fd)
            # Smaller files are written back by one syncfs before the marker
            # (publish.py). Until then a crash of the node (not of the
            # process: the page cache survives a kill -9) can leave one short,
            # and the size check at resume fetches it again.
            if os.fstat(fd).st_size != have:
                raise TransientError(f"{inc} is {os.fstat(fd).st_size} bytes on disk, {have} were written")
        except BaseException:
            if isinstance(hasher, _HashPipe):
                hasher.close()
            raise
        finally:
            os.close(fd)  # raises on a deferred write error (NFS)
        return have, (hasher.hexdigest() if hasher is not None else None)

    @staticmethod
    def _hasher(f: RemoteFile) -> "hashlib._Hash | _HashPipe | None":
        h = f.new_hasher()
        if h is not None and (f.size or 0) > PIPE_HASH_ABOVE:
            return _HashPipe(h)
        return h

    def _check_cancel(self) -> None:
        if self.opts.cancel.is_set():
            raise _Cancelled()

    # -- many files -------------------------------------------------------

    def _parted(self, f: RemoteFile) -> bool:
        """Fetch this file as parallel ranged parts? Only large files of known
        size from origins that take ranges; a single-stream partial left by an
        earlier run (no journal) is resumed as it is."""
        from webhook.download.parts import PARTS_ABOVE, journal_path

        if not getattr(self.source, "ranged", False) or f.size is None or f.size < PARTS_ABOVE:
            return False
        inc = self.scratch / "incomplete" / f.path
        if inc.exists() and not journal_path(inc).exists() and 0 < inc.stat().st_size < f.size:
            return False
        return True

    def fetch_all(self, files: list[RemoteFile], poll: Callable[[], None]) -> list[FileRecord]:
        """Fetches in parallel, biggest first, with `jobs` connections shared
        by files and parts: a large file becomes part tasks queued ahead of
        the other files, so every connection works on it until its last parts
        are taken, then moves on. `poll` runs on the calling thread between
        waits (signals, a lost lock) and may raise.

        Daemon threads rather than a ThreadPoolExecutor: after a failure or a
        SIGTERM a worker blocked in a socket read must not hold up the exit
        (the executor joins its threads at interpreter shutdown)."""
        import collections

        tasks: collections.deque = collections.deque(("file", f, False) for f in sorted(files, key=lambda f: -(f.size or 0)))
        cv = threading.Condition()
        unfinished = [len(files)]
        results: queue.Queue = queue.Queue()
        cancel = self.opts.cancel

        def submit(parts: list[tuple]) -> None:
            with cv:
                tasks.extendleft(reversed(parts))  # ahead of the other files
                cv.notify_all()

        def requeue(f: RemoteFile, single: bool) -> None:
            with cv:
                tasks.appendleft(("file", f, single))
                cv.notify_all()

        def run(task: tuple) -> FileRecord | None:
            if task[0] == "part":
                return task[1].run_part(task[2])
            f, single = task[1], task[2]
            if single or not self._parted(f):
                return self.fetch(f)
            final = self.partial / f.path
            if final.is_file() and final.stat().st_size == f.size:
                return self.fetch(f)  # completed by an earlier run: no request
            from webhook.download.parted import PartedFile

            inc = self.scratch / "incomplete" / f.path
            inc.parent.mkdir(parents=True, exist_ok=True)
            pf = PartedFile(self, f, inc, submit, requeue)
            if pf.remaining == 0:  # every part on disk already (killed before the rename)
                return pf.finish()
            return None

        def worker() -> None:
            while True:
                with cv:
                    while not tasks and unfinished[0] > 0 and not cancel.is_set():
                        cv.wait(0.25)
                    if cancel.is_set() or not tasks:
                        return
                    task = tasks.popleft()
                try:
                    rec = run(task)
                except BaseException as err:  # noqa: BLE001 - handed to the main thread
                    results.put((None, err))
                    cancel.set()
                    with cv:
                        cv.notify_all()
                    return
                if rec is not None:
                    results.put((rec, None))
                    with cv:
                        unfinished[0] -= 1
                        cv.notify_all()

        n = max(1, self.opts.jobs)
        threads = [threading.Thread(target=worker, name=f"model-cache-fetch-{i}", daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        records: list[FileRecord] = []
        try:
            while len(records) < len(files):
                try:
                    rec, err = results.get(timeout=0.5)
                except queue.Empty:
                    poll()
                    if cancel.is_set() and not any(t.is_alive() for t in threads) and results.empty():
                        raise NetworkError("download cancelled")
                    continue
                if err is not None and not isinstance(err, _Cancelled):
                    raise err
                if rec is not None:
                    records.append(rec)
        except BaseException:
            cancel.set()
            # Give the workers a moment to notice (they check between chunks)
            # so that none still writes after our lock is released.
            deadline = time.monotonic() + 2.0
            for t in threads:
                t.join(timeout=max(0.0, deadline - time.monotonic()))
            raise
        return records


class _Cancelled(Exception):
    """Another worker failed or a signal arrived: stop this one quietly."""


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
