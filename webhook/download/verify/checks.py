"""What a downloaded file is verified against, and the hashers that compute
it while the bytes arrive. One home for the rule of every source:

  * hf: an LFS file's sha256 from the tree listing, another file's git blob id;
  * http(s): the policy's sha256, else the origin's `Repr-Digest` (RFC 9530)
    or `Digest` (RFC 3230) header;
  * s3: the object's full-object checksum (CRC64NVME, CRC32C, CRC32, SHA256,
    SHA1), else its ETag when that is an MD5: of the whole object for a
    single-part upload, of the parts' MD5s for a multipart upload whose part
    size is known;
  * otherwise the size only, which the marker and the log say.

Every expected value is kept as lowercase hex ("<hex>-<N>" for a value over N
parts), so that one comparison serves every algorithm.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

SIZE_ONLY = "size only"


class Hasher(Protocol):
    def update(self, buf: bytes | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


class _BotocoreChecksum:
    """botocore's S3 checksum classes (update/digest) as a Hasher."""

    def __init__(self, impl: object) -> None:
        self._impl = impl

    def update(self, buf: bytes | memoryview) -> None:
        self._impl.update(buf)  # type: ignore[attr-defined]

    def digest(self) -> bytes:
        return self._impl.digest()  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return self.digest().hex()


def _botocore(name: str) -> Callable[[], Hasher] | None:
    """botocore's implementation of an S3 checksum; the CRC32C and CRC64NVME
    ones exist only when awscrt is installed (botocore[crt])."""
    from botocore import httpchecksum

    if name.startswith("Crt") and not httpchecksum.HAS_CRT:
        return None
    cls = getattr(httpchecksum, name, None)
    return None if cls is None else (lambda: _BotocoreChecksum(cls()))


def _hashlib(name: str) -> Callable[[], Hasher]:
    return lambda: hashlib.new(name, usedforsecurity=False)  # type: ignore[return-value]


def factory(algorithm: str) -> Callable[[], Hasher] | None:
    """A new hasher for `algorithm`, or None where this install cannot compute it."""
    if algorithm in ("sha256", "sha512", "sha1", "md5"):
        return _hashlib(algorithm)
    return {"crc32": lambda: _botocore("Crc32Checksum"),
            "crc32c": lambda: _botocore("CrtCrc32cChecksum"),
            "crc64nvme": lambda: _botocore("CrtCrc64NvmeChecksum")}.get(algorithm, lambda: None)()


class GitBlob:
    """git's object id of a blob: sha1 over "blob <size>\\0" and the bytes."""

    def __init__(self, size: int) -> None:
        self._h = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)

    def update(self, buf: bytes | memoryview) -> None:
        self._h.update(buf)

    def digest(self) -> bytes:
        return self._h.digest()

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class PerPart:
    """A digest of the parts' digests, "<hex>-<N>": S3's multipart ETag (the
    MD5 of the parts' MD5s). The bytes must arrive in order."""

    def __init__(self, new: Callable[[], Hasher], part_size: int) -> None:
        self._new = new
        self._part_size = part_size
        self._outer = new()
        self._part = new()
        self._left = part_size
        self._parts = 0
        self._result: str | None = None

    def update(self, buf: bytes | memoryview) -> None:
        view = memoryview(buf)
        while view:
            n = min(len(view), self._left)
            self._part.update(view[:n])
            view = view[n:]
            self._left -= n
            if self._left == 0:
                self._close_part()

    def _close_part(self) -> None:
        self._outer.update(self._part.digest())
        self._parts += 1
        self._part = self._new()
        self._left = self._part_size

    def digest(self) -> bytes:
        return bytes.fromhex(self.hexdigest().split("-", 1)[0])

    def hexdigest(self) -> str:
        if self._result is None:
            if self._left < self._part_size:
                self._close_part()  # the last, shorter part
            self._result = f"{self._outer.hexdigest()}-{self._parts}"
        return self._result


@dataclass(frozen=True)
class Check:
    algorithm: str              # the marker's word: sha256, sha512, sha1, md5, crc32, crc32c, crc64nvme, git-blob-sha1
    value: str                  # expected, lowercase hex; "<hex>-<N>" for a digest of N parts' digests
    source: str                 # where the value comes from, for the marker and the messages
    part_size: int | None = None  # the parts' size, for a "-<N>" value

    def new_hasher(self, size: int | None) -> Hasher | None:
        if self.algorithm == "git-blob-sha1":
            return GitBlob(size) if size is not None else None
        new = factory(self.algorithm)
        if new is None:
            return None
        return PerPart(new, self.part_size) if self.part_size else new()


def from_base64(algorithm: str, value: str, source: str) -> Check | None:
    """A Check from a base64 digest (S3 checksums, HTTP digest headers);
    None for a value that is not base64 of the algorithm's length."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    new = factory(algorithm)
    if new is None or len(raw) != len(new().digest()):
        return None
    return Check(algorithm, raw.hex(), source)


def how_verified(check: Check | None) -> str:
    """How one file was verified, for the log."""
    return f"{SIZE_ONLY} (no checksum from the origin that can be checked)" if check is None else f"{check.algorithm} ({check.source})"


def summary(checks: Iterable[tuple[str, Check | None]], names: int = 5) -> str:
    """One log line: how the files were verified, naming the size-only ones."""
    counts: dict[str, int] = {}
    size_only: list[str] = []
    for path, check in checks:
        if check is None:
            size_only.append(path)
        else:
            counts[how_verified(check)] = counts.get(how_verified(check), 0) + 1
    parts = [f"{n} by {what}" for what, n in sorted(counts.items())]
    if size_only:
        shown = ", ".join(sorted(size_only)[:names]) + (f" and {len(size_only) - names} more" if len(size_only) > names else "")
        parts.append(f"{len(size_only)} by {how_verified(None)}: {shown}")
    return "verified: " + "; ".join(parts) if parts else "verified: no files"
