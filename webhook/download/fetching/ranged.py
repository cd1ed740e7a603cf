"""One large file fetched as parallel ranged parts, written in place.

The `.incomplete` file is preallocated to the full size; each part's bytes
are written at their offset (pwrite on one shared descriptor), so the parts
need no assembly. A background thread per file
  * hashes the file in order as its prefix fills (reading back from the page
    cache, 1 MiB at a time: memory stays bounded whatever the size), so the
    digest is ready soon after the last byte;
  * every JOURNAL_EVERY seconds fdatasyncs the data and then rewrites the
    journal (part_journal.py), so a kill -9 loses at most that much of each part.

Each part is retried on its own (a stall or a reset re-requests the rest of
that part only). A response that shows the object is not the one we have
parts of (another ETag or size, a 412 on If-Match, a 200 to If-Range) or an
origin that ignores Range makes the whole file start over on one stream:
nothing from two versions is spliced.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import Callable

from webhook.download.errors import ChangedError, NetworkError, TransientError
from webhook.download.fetching.part_journal import Journal, journal_path, plan_parts
from webhook.download.remote import Body, FileRecord, RemoteFile
from webhook.download.lines import emit
from webhook.download.fetching.transfer import Transfer

JOURNAL_EVERY = 0.1    # seconds between journal writes: about what a kill -9 loses
HASH_SPAN = 16 << 20   # bytes hashed between two looks at the journal timer
READ = 1 << 20


class Restart(Exception):
    """This file must start over on one stream (changed object, Range ignored)."""


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def preallocate(fd: int, size: int) -> None:
    """Reserves the blocks (a full disk shows now, not half-way) where the
    file system can; a sparse file of the right length elsewhere (NFS < 4.2)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)


class PartedFile:
    def __init__(self, transfer: Transfer, f: RemoteFile, inc: Path,
                 submit: Callable[["PartedFile", list[int]], None], requeue: Callable[[RemoteFile, bool], None]) -> None:
        assert f.size is not None
        self.t = transfer
        self.f = f
        self.size: int = f.size
        self.inc = inc
        self.jpath = journal_path(inc)
        self.requeue = requeue
        immutable = bool(getattr(transfer.source, "immutable", False))
        journal = None
        if inc.exists() and inc.stat().st_size == self.size:
            journal = Journal.load(self.jpath, self.size, need_validator=not immutable)
        self.fd = os.open(inc, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if journal is None:
                try:
                    self.jpath.unlink()
                except FileNotFoundError:
                    pass
                os.ftruncate(self.fd, 0)
                preallocate(self.fd, self.size)
                parts = plan_parts(self.size, transfer.opts.jobs)
                journal = Journal(self.size, parts, None, [0] * len(parts))
        except BaseException:
            os.close(self.fd)
            raise
        self.parts = list(journal.parts)
        self.filled = list(journal.filled)
        self.validator = journal.validator
        self.cond = threading.Condition()
        self.aborted: Restart | None = None
        self.remaining = sum(1 for i in range(len(self.parts)) if not self._full(i))
        self.active = self.remaining           # part tasks queued or running
        self.dirty = False
        self.closed = False
        self.write_error: OSError | None = None  # from fdatasync on the background thread
        self.hasher = f.new_hasher()
        self.hashed = 0
        kept = sum(self.filled)
        transfer.progress.add(kept, fetched=False)
        self._stop = threading.Event()
        self._bg = threading.Thread(target=self._background, name="model-cache-parts", daemon=True)
        self._bg.start()
        submit(self, [i for i in range(len(self.parts)) if not self._full(i)])

    def _full(self, i: int) -> bool:
        start, end = self.parts[i]
        return self.filled[i] >= end - start

    # -- the background thread: in-order hash and journal ------------------

    def _contiguous(self) -> int:
        """End of the filled prefix of the file."""
        for i, (start, end) in enumerate(self.parts):
            if self.filled[i] < end - start:
                return start + self.filled[i]
        return self.size

    def _background(self) -> None:
        last_flush = time.monotonic()
        cancel = self.t.opts.cancel
        while True:
            with self.cond:
                if self.aborted is not None:
                    return
                avail = self._contiguous()
                if (self.hasher is None or self.hashed >= avail) and not self._stop.is_set():
                    self.cond.wait(JOURNAL_EVERY)
                    avail = self._contiguous()
            if cancel.is_set():
                self._flush()  # a SIGTERM keeps what arrived
                return
            if self.hasher is not None and self.hashed < avail:
                self._hash_to(min(avail, self.hashed + HASH_SPAN))
            if time.monotonic() - last_flush >= JOURNAL_EVERY:
                self._flush()
                last_flush = time.monotonic()
            if self._stop.is_set() and (self.hasher is None or self.hashed >= self.size):
                return

    def _hash_to(self, upto: int) -> None:
        assert self.hasher is not None
        while self.hashed < upto:
            buf = os.pread(self.fd, min(READ, upto - self.hashed), self.hashed)
            if not buf:
                raise OSError(errno.EIO, f"{self.inc}: short read at {self.hashed}")
            self.hasher.update(buf)
            self.hashed += len(buf)

    def _flush(self) -> None:
        """Data first, then the journal that points at it."""
        with self.cond:
            if not self.dirty or self.closed or self.aborted is not None or self.write_error is not None:
                return
            snapshot = Journal(self.size, self.parts, self.validator, list(self.filled))
            self.dirty = False
        try:
            os.fdatasync(self.fd)
            snapshot.save(self.jpath)
        except OSError as err:
            # Linux reports a write-back error once per descriptor: a retry
            # would succeed and the journal would claim bytes that never
            # reached the disk. The file fails; the journal stays at its last
            # entry synced without error, where the next run resumes.
            self._fail(err)

    def _fail(self, err: OSError) -> None:
        with self.cond:
            if self.write_error is None:
                self.write_error = err
            self.cond.notify_all()

    def _raise_write_error(self) -> None:
        if self.write_error is not None:
            raise self.write_error

    # -- one part, on a worker thread ---------------------------------------

    def run_part(self, i: int) -> FileRecord | None:
        """Fetches part i; returns the file's record if this was the last
        part and the file is now complete and verified."""
        try:
            self._fetch_part(i)
        except Restart as r:
            self._abort(r)
        except ChangedError as err:
            self._abort(Restart(str(err)))
        finally:
            with self.cond:
                self.active -= 1
                idle = self.active == 0
                last = idle and self.remaining == 0 and self.aborted is None
                aborted = idle and self.aborted is not None
        if aborted:
            self._start_over()
            return None
        if last:
            return self._finish()
        return None

    def _check(self, body: Body) -> None:
        if body.restarted:
            changed = self.validator and body.validator and body.validator != self.validator
            raise Restart("the object changed on the origin (another ETag)" if changed
                          else "the origin ignores Range requests")
        if body.total is not None and body.total != self.size:
            raise Restart(f"the object changed on the origin (now {body.total} bytes, {self.size} expected)")
        if body.validator:
            with self.cond:
                if self.validator is None:
                    self.validator = body.validator
                    self.dirty = True
                elif body.validator != self.validator:
                    raise Restart(f"the object changed on the origin (ETag {body.validator}, "
                                  f"{self.validator} expected)")

    def _fetch_part(self, i: int) -> None:
        start, end = self.parts[i]
        t = self.t
        policy = t.policy
        cancel = t.opts.cancel
        failures = 0
        while True:
            if self.aborted is not None:
                return
            self._raise_write_error()
            t.check_cancel()
            pos = start + self.filled[i]
            if pos >= end:
                break
            try:
                body = t.source.open(self.f, pos, self.validator, end=end)
                try:
                    self._check(body)
                    # Read to the end of the body (the read that returns
                    # nothing): that hands the connection back to the pool,
                    # where leaving early would close it, and the next part
                    # would pay a new connection's round trips.
                    for chunk in body.chunks:
                        if pos >= end:
                            break  # the origin sends more than we asked for: drop the connection
                        n = min(len(chunk), end - pos)
                        pwrite_all(self.fd, memoryview(chunk)[:n], pos)
                        pos += n
                        with self.cond:
                            self.filled[i] = pos - start
                            self.dirty = True
                            self.cond.notify_all()
                        t.progress.add(n)
                        failures = 0  # bytes arrived: the retry budget starts again
                        if self.aborted is not None:
                            break
                        self._raise_write_error()
                        if cancel.is_set():
                            t.check_cancel()
                finally:
                    body.close()
                if self.aborted is not None:
                    return
                if pos < end:
                    raise TransientError(f"connection closed after {pos - start} of {end - start} bytes")
            except TransientError as err:
                failures += 1
                where = f"{self.f.path} (part {i + 1}/{len(self.parts)}, bytes {pos}-{end - 1})"
                if failures > policy.retries:
                    raise NetworkError(
                        f"{t.source.label}: {where}: {err}; gave up after {policy.retries} retries "
                        f"(the partial data is kept: a restart resumes)") from None
                delay = policy.delay(failures, err)
                emit(f"model-cache: {where}: {err}; retry {failures}/{policy.retries} in {delay:.1f}s")
                if cancel.wait(delay):
                    t.check_cancel()
        with self.cond:
            self.remaining -= 1
            self.cond.notify_all()

    # -- endings -------------------------------------------------------------

    def _abort(self, r: Restart) -> None:
        with self.cond:
            if self.aborted is None:
                self.aborted = r
            self.cond.notify_all()

    def _close(self) -> None:
        """Stops the background thread and closes the descriptor; close()
        reports a deferred write error (NFS) and raises it."""
        self._stop.set()
        with self.cond:
            self.cond.notify_all()
        self._bg.join()
        with self.cond:
            self.closed = True
        os.close(self.fd)

    def _start_over(self) -> None:
        """The last part task of an aborted file: drop everything of it and
        fetch it again on one stream."""
        self._close()
        for p in (self.jpath, self.inc):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        self.t.progress.add(-sum(self.filled), fetched=False)
        emit(f"model-cache: {self.f.path}: {self.aborted}; fetching it again from the start over one stream")
        self.requeue(self.f, True)

    def finish(self) -> FileRecord | None:
        """For a file whose parts were all on disk already: verify and rename."""
        return self._finish()

    def _finish(self) -> FileRecord | None:
        try:
            self._raise_write_error()
            # On the descriptor that wrote: a new one would not see an error
            # already reported to this one.
            os.fsync(self.fd)
        except OSError:
            self._close()
            raise
        self._close()
        if self.hasher is not None and self.hashed < self.size:
            # The background thread stopped early (an error): finish here.
            fd = os.open(self.inc, os.O_RDONLY)
            try:
                while self.hashed < self.size:
                    buf = os.pread(fd, min(READ, self.size - self.hashed), self.hashed)
                    if not buf:
                        break
                    self.hasher.update(buf)
                    self.hashed += len(buf)
            finally:
                os.close(fd)
        f = self.f
        digest = self.hasher.hexdigest() if self.hasher is not None else None
        expected = f.expected_digest()
        if expected is not None and digest != expected:
            for p in (self.jpath, self.inc):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
            self.t.progress.add(-self.size, fetched=False)
            self.t.checksum_mismatch(f, digest, expected)
            self.requeue(f, False)
            return None
        if self.inc.stat().st_size != self.size:
            raise TransientError(f"{self.inc} is {self.inc.stat().st_size} bytes on disk, {self.size} expected")
        final = self.t.final_path(f)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.inc, final)
        try:
            self.jpath.unlink()
        except FileNotFoundError:
            pass
        self.t.progress.file_done()
        return FileRecord(f.path, self.size, f.check, f.etag)
