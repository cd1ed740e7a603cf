"""File system primitives with every error checked.

On NFS a full disk or a lost server often shows up only in fsync() or close(),
so both are called explicitly and their errors propagate; nothing here relies
on flock.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fsync_dir(path: Path) -> None:
    """Makes renames and creations inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as err:
        # Some file systems (and some FUSE mounts) refuse fsync on a directory.
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a short write is legal)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_file_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Readers see the old file or the whole new one, never half of it.
    durable=False skips the fsync, for files that may be lost in a crash."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_tree(path: Path) -> None:
    """Deletes a directory tree that may be half gone already."""
    shutil.rmtree(path, ignore_errors=True)


def tree_size(path: Path) -> int:
    """Bytes of regular files under `path` (0 if it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _libc_syncfs():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
        fn.argtypes = [ctypes.c_int]
        return fn, ctypes
    except (OSError, AttributeError):
        return None


_SYNCFS = _libc_syncfs()


def sync_filesystem(path: Path) -> None:
    """Writes back every dirty page of the file system holding `path` and
    reports a write error (Linux >= 5.8 returns them from syncfs). One call
    instead of an fsync per small file: each fsync is a journal commit (an
    NFS COMMIT), and hundreds of them cost seconds."""
    if _SYNCFS is None:
        os.sync()
        return
    fn, ctypes = _SYNCFS
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
