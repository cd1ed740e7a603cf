"""A tar archive unpacked as it arrives: the bytes go from the origin through
the hash into tarfile's stream reader, and only the members reach the
volume (into the partial directory, which nobody reads). The digest is
checked after the last byte, before anything is published.

Within one run a broken connection resumes where it stopped (a Range with
If-Range, the stream continues as if nothing happened); an origin that
answers with the whole file instead, or a changed object, makes the unpack
start again from an empty directory. After a kill, a plain tar resumes
where its bytes on the volume end (tar_resume.py); a compressed stream
cannot be entered half-way and starts from the beginning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from webhook.download.archive.tar_resume import Checkpoints, Invalid, State, unpack_resumable
from webhook.download.archive.unpack import Budget, clear_except_scratch, unpack_tar_stream
from webhook.download.errors import ChecksumError, DownloadError, NetworkError, TransientError
from webhook.download.remote import Body, RemoteFile
from webhook.download.lines import emit
from webhook.download.fetching.transfer import Transfer

MAX_RESTARTS = 3  # starts from zero within one run before giving up


class _StartOver(Exception):
    """The stream cannot continue (no Range, another object): unpack again."""


class ResumableStream:
    """A file-like `read()` over the body of one remote file that reconnects
    at its position after a transient error. Every byte passes through the
    hash and the progress count exactly once."""

    def __init__(self, t: Transfer, f: RemoteFile, poll: Callable[[], None]) -> None:
        self.t, self.f, self.poll = t, f, poll
        self.pos = 0
        self.hasher = f.new_hasher()
        self.validator: str | None = None
        self.failures = 0
        self._buf = b""  # the chunk being read, from self._off on
        self._off = 0
        self._body: Body | None = None
        self._chunks: Iterator[bytes] | None = None
        self._eof = False

    # -- the file-like side, for tarfile ------------------------------------

    def read(self, n: int = -1) -> bytes:
        """N bytes (fewer only at the end), all for n < 0. Slices of the
        current chunk, so that tarfile's 10 KiB reads copy nothing twice."""
        pieces: list[bytes] = []
        want = n
        while want != 0:
            if self._off >= len(self._buf):
                chunk = None if self._eof else self._next_chunk()
                if chunk is None:
                    break
                self._buf, self._off = chunk, 0
            left = len(self._buf) - self._off
            take = left if want < 0 else min(want, left)
            pieces.append(self._buf[self._off:self._off + take])
            self._off += take
            if want > 0:
                want -= take
        return b"".join(pieces)

    def drain(self) -> None:
        """Reads what tarfile left (the padding after the end-of-archive
        blocks, a compressor's trailer): the digest covers every byte."""
        while not self._eof and self._next_chunk() is not None:
            pass
        self._eof = True

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def hexdigest(self) -> str | None:
        return self.hasher.hexdigest() if self.hasher is not None else None

    # -- the network side ------------------------------------------------------

    def _open(self) -> None:
        self.close()
        body = self.t.source.open(self.f, self.pos, self.validator)
        if body.restarted and self.pos:
            body.close()
            raise _StartOver("the origin sent the whole file again instead of the rest (no Range, or it changed)")
        if self.validator and body.validator and body.validator != self.validator:
            body.close()
            raise _StartOver(f"the object changed on the origin (validator {body.validator}, {self.validator} expected)")
        self.validator = body.validator or self.validator
        self._body, self._chunks = body, iter(body.chunks)

    def _next_chunk(self) -> bytes | None:
        f, t = self.f, self.t
        while True:
            self.poll()
            try:
                if self._chunks is None:
                    self._open()
                assert self._chunks is not None
                chunk = next(self._chunks, None)
                if chunk is None:
                    self.close()
                    self._chunks = None
                    if f.size is not None and self.pos < f.size:
                        raise TransientError(f"connection closed after {self.pos} of {f.size} bytes")
                    self._eof = True  # never asked for again: a Range past the end would restart it
                    return None
            except TransientError as err:
                self.close()
                self._chunks = None
                self.failures += 1
                if self.failures > t.opts.retries:
                    raise NetworkError(f"{t.source.label}: {f.path}: {err}; gave up after {t.opts.retries} retries") from None
                delay = t.policy.delay(self.failures, err)
                emit(f"model-cache: {f.path}: {err}; retry {self.failures}/{t.opts.retries} in {delay:.1f}s")
                t.opts.cancel.wait(delay)
                continue
            self.failures = 0  # bytes arrived: the retry budget starts again
            if f.size is not None and self.pos + len(chunk) > f.size:
                raise ChecksumError(f"{f.path}: the origin sent more than the {f.size} bytes it announced")
            self.pos += len(chunk)
            if self.hasher is not None:
                self.hasher.update(chunk)
            t.progress.add(len(chunk))
            return chunk


def _resume_point(t: Transfer, f: RemoteFile, target: Path, checkpoints: Checkpoints,
                  stream: ResumableStream) -> State | None:
    """The checkpoint a killed run left, replayed into STREAM's hash and
    rewound to, or None (then the unpack starts from an empty directory)."""
    state = checkpoints.load()
    if state is None or not state.validator:
        return None
    hasher = f.new_hasher()
    try:
        checkpoints.rewind(state)
        if hasher is not None:
            checkpoints.replay(state, hasher)
    except (Invalid, OSError) as why:
        emit(f"model-cache: {f.path}: the last run's checkpoint cannot be used ({why}); unpacking from the start")
        return None
    stream.pos, stream.hasher, stream.validator = state.offset, hasher, state.validator
    t.progress.add(state.offset, fetched=False)
    emit(f"model-cache: {f.path}: resuming at byte {state.offset} ({len(state.members)} members on the volume)")
    return state


def fetch_and_unpack(t: Transfer, f: RemoteFile, target: Path, poll: Callable[[], None],
                     budget: Budget | None = None, resumable: bool = False) -> str | None:
    """Streams the tar archive F into TARGET and verifies it; returns its
    digest (None when there is nothing to check it against). Raises ChecksumError when the
    digest is wrong twice; TARGET then holds no verified content, and the
    caller publishes nothing. RESUMABLE (a plain tar): checkpoints are kept
    and a killed run's are used (tar_resume.py)."""
    budget = budget or Budget(None, "")
    checkpoints = Checkpoints(target) if resumable else None
    restarts = 0
    first = True
    while True:
        stream = ResumableStream(t, f, poll)
        state = _resume_point(t, f, target, checkpoints, stream) if first and checkpoints is not None else None
        first = False
        if state is None:
            if checkpoints is not None:
                checkpoints.drop()
            clear_except_scratch(target)
        try:
            try:
                if checkpoints is not None:
                    unpack_resumable(stream, target, budget, checkpoints, state, lambda: stream.validator, f.size)
                else:
                    unpack_tar_stream(stream, target, budget)
            except DownloadError:
                if f.expected_digest() is None:
                    raise
                # Damaged bytes look like a damaged archive: the digest tells which.
                stream.drain()
                if stream.hexdigest() == f.expected_digest():
                    raise
            else:
                stream.drain()
        except _StartOver as why:
            restarts += 1
            t.progress.add(-stream.pos, fetched=False)
            if restarts > MAX_RESTARTS:
                raise NetworkError(f"{t.source.label}: {why}; started over {MAX_RESTARTS} times") from None
            emit(f"model-cache: {f.path}: {why}; unpacking again from the start")
            continue
        finally:
            stream.close()
        digest, expected = stream.hexdigest(), f.expected_digest()
        if expected is None or digest == expected:
            return digest
        t.progress.add(-stream.pos, fetched=False)
        t.checksum_mismatch(f, digest, expected)
