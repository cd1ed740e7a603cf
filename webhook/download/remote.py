"""What a source offers the transfer engine: the files of a model (RemoteFile,
Listing), an open byte stream (Body), the Source protocol, and what a fetched
file leaves behind (FileRecord). Plain data, shared by stream.py, ranged.py and
every module of sources/."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from webhook.download.verify.checks import Check, Hasher

CHUNK = 1 << 20  # 1 MiB: big enough for throughput, small enough for bounded memory
SCRATCH = ".model-cache-tmp"  # inside the partial dir, removed before publishing


@dataclass
class RemoteFile:
    path: str                   # relative POSIX path inside the model directory
    size: int | None            # None when the origin does not say
    check: Check | None = None  # what the whole file is verified against (verify/checks.py); None: its size only
    ref: Any = None             # source-specific: URL, S3 key, local path
    etag: str | None = None     # recorded in the marker

    def expected_digest(self) -> str | None:
        return self.check.value if self.check is not None else None

    def new_hasher(self) -> Hasher | None:
        return self.check.new_hasher(self.size) if self.check is not None else None


@dataclass
class Listing:
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

    def listing(self) -> Listing: ...

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body: ...


@dataclass
class FileRecord:
    path: str
    size: int
    check: Check | None = None  # what it was verified against; None: its size only
    etag: str | None = None


@dataclass
class FetchOptions:
    jobs: int = 16
    retries: int = 8
    backoff: float = 1.0
    cancel: threading.Event = field(default_factory=threading.Event)
