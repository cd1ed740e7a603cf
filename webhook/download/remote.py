"""What a source offers the transfer engine: the files of a model (RemoteFile,
Plan), an open byte stream (Body), the Source protocol, and what a fetched
file leaves behind (FileRecord). Plain data, shared by fetch.py, parted.py and
every module of sources/."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

CHUNK = 1 << 20  # 1 MiB: big enough for throughput, small enough for bounded memory
SCRATCH = ".model-cache-tmp"  # inside the partial dir, removed before publishing


@dataclass
class RemoteFile:
    path: str                   # relative POSIX path inside the model directory
    size: int | None            # None when the origin does not say
    sha256: str | None = None   # expected digest, checked when known
    ref: Any = None             # source-specific: URL, S3 key, local path
    etag: str | None = None     # recorded in the marker
    git_sha1: str | None = None  # git blob id (hf non-LFS files), checked when known

    def expected_digest(self) -> str | None:
        return (self.sha256 or self.git_sha1 or "").lower() or None

    def new_hasher(self) -> "hashlib._Hash | None":
        if self.sha256:
            return hashlib.sha256()
        if self.git_sha1 and self.size is not None:
            h = hashlib.sha1()  # noqa: S324 - git's object id, not a security boundary
            h.update(b"blob %d\0" % self.size)
            return h
        return None


@dataclass
class Plan:
    files: list[RemoteFile]
    revision: str               # resolved revision (a commit for hf)
    key: str                    # identity of the content; a partial dir from another key is discarded
    archive: str | None = None  # the single file is an archive of this kind (`.tar.gz`, `.zip`) to unpack

    @property
    def total(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[arg-type]


@dataclass
class Body:
    """An open response. `chunks` raises TransientError on a stall or a reset."""

    chunks: Iterator[bytes]
    restarted: bool = False       # the origin ignored our offset: content starts at byte 0
    validator: str | None = None  # ETag/Last-Modified, sent back as If-Range on resume
    close: Callable[[], None] = lambda: None
    total: int | None = None      # the whole object's size, when the response says it


class Source(Protocol):
    label: str

    def plan(self) -> Plan: ...

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body: ...


@dataclass
class FileRecord:
    path: str
    size: int
    sha256: str | None = None
    etag: str | None = None


@dataclass
class FetchOptions:
    jobs: int = 16
    retries: int = 8
    backoff: float = 1.0
    cancel: threading.Event = field(default_factory=threading.Event)
