"""A tar archive unpacked as it arrives: the bytes go from the origin through
the hash into tarfile's stream reader, and only the members reach the
volume (into the partial directory, which nobody reads). The digest is
checked after the last byte, before anything is published.

Within one run a broken connection resumes where it stopped (a Range with
If-Range, the stream continues as if nothing happened); an origin that
answers with the whole file instead, or a changed object, makes the unpack
start again from an empty directory. A killed run starts from the
beginning: a tar stream cannot be entered half-way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from webhook.download.archive.unpack import clear_except_scratch, unpack_tar_stream
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


def fetch_and_unpack(t: Transfer, f: RemoteFile, target: Path, poll: Callable[[], None]) -> str | None:
    """Streams the tar archive F into TARGET and verifies it; returns its
    digest (None when there is nothing to check it against). Raises ChecksumError when the
    digest is wrong twice; TARGET then holds no verified content, and the
    caller publishes nothing."""
    restarts = 0
    while True:
        clear_except_scratch(target)
        stream = ResumableStream(t, f, poll)
        try:
            try:
                unpack_tar_stream(stream, target)
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
