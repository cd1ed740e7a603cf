"""A FUSE file system for tests that fails on demand: a passthrough over a
backing directory, whose write, fsync/fdatasync or fallocate returns an
errno once the files named NAME have received AFTER bytes. Run as its own
process (the `faulty_fs` fixture in conftest.py starts it):

    python -m tests.download.faultyfs BACKING MOUNT --fail fsync --after 20971520 --errno EIO --only big.bin

A failed fsync is reported once, as Linux reports a write-back error once per
descriptor: the next fsync succeeds. That is the trap a downloader falls
into if it retries an fsync and trusts the second answer.
"""

from __future__ import annotations

import argparse
import errno
import os
import threading

import mfusepy
from mfusepy import FUSE, FuseOSError, Operations


class FaultyFS(Operations):
    def __init__(self, root: str, fail: str, after: int, err: int, only: str) -> None:
        self.root, self.fail, self.after, self.err, self.only = root, fail, after, err, only
        self.written = 0
        self.fsync_failed = False
        self.lock = threading.Lock()

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _watched(self, path: str) -> bool:
        return os.path.basename(path) == self.only

    def _due(self, op: str, path: str) -> bool:
        return self.fail == op and self._watched(path) and self.written >= self.after

    # -- the faults -----------------------------------------------------------

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self.lock:
            if self._due("write", path):
                raise FuseOSError(self.err)
            if self._watched(path):
                self.written += len(data)
        return os.pwrite(fh, data, offset)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self.lock:
            if self._due("fsync", path) and not self.fsync_failed:
                self.fsync_failed = True
                raise FuseOSError(self.err)
        (os.fdatasync if datasync else os.fsync)(fh)
        return 0

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        with self.lock:
            if self._due("fallocate", path):
                raise FuseOSError(self.err)
        os.posix_fallocate(fh, offset, size)
        return 0

    # -- a plain passthrough -----------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict:
        st = os.lstat(self._full(path))
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime",
                                            "st_mtime", "st_ctime", "st_blocks", "st_ino")}

    def readdir(self, path: str, fh: int):
        return [".", "..", *os.listdir(self._full(path))]

    def statfs(self, path: str) -> dict:
        st = os.statvfs(self._full(path))
        return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                                            "f_ffree", "f_favail", "f_flag", "f_namemax")}

    def create(self, path: str, mode: int, fi=None) -> int:  # noqa: ANN001 - mfusepy's
        return os.open(self._full(path), os.O_RDWR | os.O_CREAT, mode)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._full(path), flags & ~os.O_CREAT)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path), length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._full(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._full(path))
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._full(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self._full(old), self._full(new))
        return 0

    def link(self, target: str, source: str) -> int:
        os.link(self._full(source), self._full(target))
        return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._full(target))
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self._full(path))

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._full(path), mode)
        return 0

    def utimens(self, path: str, times=None) -> int:  # noqa: ANN001 - mfusepy's
        os.utime(self._full(path), times)
        return 0

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("backing")
    p.add_argument("mount")
    p.add_argument("--fail", choices=["write", "fsync", "fallocate", "none"], default="none")
    p.add_argument("--after", type=int, default=0, help="bytes written to the watched files before the fault")
    p.add_argument("--errno", default="EIO", help="EIO, ENOSPC, ...")
    p.add_argument("--only", default="", help="the basename of the files the fault applies to")
    a = p.parse_args()
    ops = FaultyFS(a.backing, a.fail, a.after, getattr(errno, a.errno), a.only)
    FUSE(ops, a.mount, foreground=True)


if __name__ == "__main__":
    main()
