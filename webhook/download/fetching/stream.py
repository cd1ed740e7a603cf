"""One file over one stream: into an `.incomplete` file, resumed from its
length, verified, fsynced and renamed to its final name inside the partial
directory. Large files go as ranged parts instead (ranged.py); the scheduler
(scheduler.py) decides which and runs both on the shared connections.

A file at its final name inside the partial directory is complete and
verified. A single-stream `.incomplete` file is resumed from its length, so a
`kill -9` at any moment loses at most the bytes that were in flight.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from webhook.download.verify.checks import Hasher
from webhook.download.errors import ChecksumError, NetworkError, TransientError
from webhook.download.volume.checked_io import write_all
from webhook.download.verify.hashing import FSYNC_ABOVE, PIPE_HASH_ABOVE, WRITEBACK_EVERY, HashPipe, hash_prefix, start_writeback
from webhook.download.remote import FileRecord, RemoteFile
from webhook.download.lines import emit
from webhook.download.fetching.transfer import Transfer


class Fetcher:
    """Fetches whole files over one stream each, for one Transfer."""

    def __init__(self, transfer: Transfer) -> None:
        self.t = transfer

    def fetch(self, f: RemoteFile) -> FileRecord:
        t = self.t
        final = t.final_path(f)
        if final.is_file():
            size = final.stat().st_size
            if f.size is None or size == f.size:
                # Completed (and verified) by an earlier run: not fetched again.
                t.progress.add(size, fetched=False)
                t.progress.file_done()
                return FileRecord(f.path, size, f.check, f.etag)
            final.unlink()
        inc = t.incomplete_path(f)
        inc.parent.mkdir(parents=True, exist_ok=True)
        while True:
            size, digest = self._stream_to(f, inc)
            expected = f.expected_digest()
            if expected is None or digest == expected:
                break
            t.progress.add(-size, fetched=False)
            inc.unlink()
            t.checksum_mismatch(f, digest, expected)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(inc, final)
        try:
            os.unlink(validator_path(inc))
        except FileNotFoundError:
            pass
        t.progress.file_done()
        return FileRecord(f.path, size, f.check, f.etag)

    def _resume_point(self, f: RemoteFile, inc: Path) -> tuple[int, str | None]:
        """Where an earlier run's partial file continues, and the validator
        (ETag, Last-Modified) its bytes came with. A resume needs something
        that tells a changed object from ours: that validator (sent as
        If-Range), a digest to check the whole against, or a source whose
        content cannot change. Without one the file starts from zero, so
        that two versions are never spliced. The record is keyed by the
        file's size: another size is another object."""
        have = inc.stat().st_size if inc.exists() else 0
        if not have or (f.size is not None and have > f.size):
            return 0, None
        try:
            saved = json.loads(validator_path(inc).read_text())
            validator = saved["validator"] if saved.get("size") == f.size else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            validator = None
        if validator or f.expected_digest() is not None or getattr(self.t.source, "immutable", False):
            return have, validator
        emit(f"model-cache: {f.path}: the origin gave no ETag or Last-Modified and no checksum is known: "
             f"fetching it again from the start rather than risk splicing two versions")
        return 0, None

    def _stream_to(self, f: RemoteFile, inc: Path) -> tuple[int, str | None]:
        """Fills `inc` to the end of the file; returns (size, its digest or None)."""
        t = self.t
        valfile = validator_path(inc)
        have, validator = self._resume_point(f, inc)
        hasher = new_hasher(f)
        if hasher is not None and have:
            hash_prefix(hasher, inc, have)
        t.progress.add(have, fetched=False)
        fd = os.open(inc, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, have)
            os.lseek(fd, have, os.SEEK_SET)
            failures = 0
            while f.size is None or have < f.size:
                t.check_cancel()
                try:
                    body = t.source.open(f, have, validator)
                    try:
                        if body.restarted and have:
                            # A 200 to our Range request: start over, never append.
                            os.ftruncate(fd, 0)
                            os.lseek(fd, 0, os.SEEK_SET)
                            t.progress.add(-have, fetched=False)
                            have = 0
                            if isinstance(hasher, HashPipe):
                                hasher.close()
                            hasher = new_hasher(f)
                        if body.validator and body.validator != validator:
                            validator = body.validator
                            valfile.write_text(json.dumps({"size": f.size, "validator": validator}))
                        cancel = t.opts.cancel
                        synced = have
                        for chunk in body.chunks:
                            write_all(fd, chunk)
                            if hasher is not None:
                                hasher.update(chunk)
                            have += len(chunk)
                            if start_writeback is not None and have - synced >= WRITEBACK_EVERY:
                                start_writeback(fd, synced, have - synced)
                                synced = have
                            t.progress.add(len(chunk))
                            failures = 0  # bytes arrived: the retry budget starts again
                            if cancel.is_set():
                                t.check_cancel()
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
                    if failures > t.opts.retries:
                        raise NetworkError(
                            f"{t.source.label}: {f.path}: {err}; gave up after {t.opts.retries} retries "
                            f"(the partial data is kept: a restart resumes)") from None
                    delay = t.policy.delay(failures, err)
                    emit(f"model-cache: {f.path}: {err}; retry {failures}/{t.opts.retries} in {delay:.1f}s")
                    if t.opts.cancel.wait(delay):
                        t.check_cancel()
            if f.size is None or f.size >= FSYNC_ABOVE:
                os.fsync(fd)
            # Smaller files are written back by one syncfs before the marker
            # (volume/publish.py). Until then a crash of the node (not of the
            # process: the page cache survives a kill -9) can leave one short,
            # and the size check at resume fetches it again.
            if os.fstat(fd).st_size != have:
                raise TransientError(f"{inc} is {os.fstat(fd).st_size} bytes on disk, {have} were written")
        except BaseException:
            if isinstance(hasher, HashPipe):
                hasher.close()
            raise
        finally:
            os.close(fd)  # raises on a deferred write error (NFS)
        return have, (hasher.hexdigest() if hasher is not None else None)


def validator_path(inc: Path) -> Path:
    """Where the ETag/Last-Modified a single-stream partial came with is kept."""
    return Path(str(inc) + ".validator")


def new_hasher(f: RemoteFile) -> "Hasher | HashPipe | None":
    """The digest `f` is checked against; on its own thread for large files."""
    h = f.new_hasher()
    if h is not None and (f.size or 0) > PIPE_HASH_ABOVE:
        return HashPipe(h)
    return h
