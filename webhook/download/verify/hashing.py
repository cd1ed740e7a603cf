"""Hashing while downloading: a prefix already on disk, a hash on its own
thread for large files (so the network thread never waits for sha256), and
early writeback so the final fsync has little left to do."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable

from webhook.download.verify.checks import Hasher
from webhook.download.remote import CHUNK


def hash_prefix(h: Hasher, path: Path, upto: int | None = None) -> Hasher:
    """Feeds the first `upto` bytes of `path` (all of it for None) into `h`:
    the part of a file an earlier run left, before the download resumes."""
    left = upto
    with open(path, "rb") as f:
        while left is None or left > 0:
            buf = f.read(CHUNK if left is None else min(CHUNK, left))
            if not buf:
                break
            h.update(buf)
            if left is not None:
                left -= len(buf)
    return h


class HashPipe:
    """Hashes on its own thread (hashlib, zlib and awscrt release the GIL on big updates), so
    the receive loop never waits for the digest of a large file. The queue
    bounds the memory held to a few chunks."""

    def __init__(self, h: Hasher) -> None:
        self._h = h
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._t = threading.Thread(target=self._run, name="model-cache-hash", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (buf := self._q.get()) is not None:
            self._h.update(buf)

    def update(self, buf: bytes) -> None:
        self._q.put(buf)

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()

    def hexdigest(self) -> str:
        self.close()
        return self._h.hexdigest()


PIPE_HASH_ABOVE = 16 << 20
FSYNC_ABOVE = 8 << 20
WRITEBACK_EVERY = 32 << 20


def _writeback_starter() -> Callable[[int, int, int], None] | None:
    """sync_file_range(SYNC_FILE_RANGE_WRITE): starts writing a big file's
    pages to disk while it downloads, so that the fsync at its end has little
    left to do. Linux only; a no-op elsewhere. Errors are left to fsync."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    except (OSError, AttributeError):
        return None
    return lambda fd, offset, n: fn(fd, offset, n, 2)


start_writeback = _writeback_starter()
