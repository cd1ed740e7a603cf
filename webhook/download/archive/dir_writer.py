"""Writes an archive's members relative to directory descriptors: every
component is opened with O_NOFOLLOW from its parent's descriptor, files are
created with O_EXCL, so a symlink on the volume is never followed, whatever
the checks before missed, and no name is resolved by path text."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable, Iterable

from webhook.download.archive.names import Parts, UnsafeArchive, shown

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Always there: every file readable and every directory searchable by all, as
# the downloader's own files are. The serving containers read the model under
# their own uid, often not the downloader's (a zip written by Python's
# writestr says 0600; tarfile keeps a 000 mode before 3.11.4).
FILE_BITS, DIR_BITS = 0o644, 0o755


def file_mode(mode: int) -> int:
    """No setuid/setgid/sticky, no write for group and others, and readable
    by everyone."""
    return (mode & 0o755) | FILE_BITS


def dir_mode(mode: int) -> int:
    return (mode & 0o755) | DIR_BITS


class DirWriter:
    """Creates entries under ROOT (the partial directory, ours alone)."""

    def __init__(self, root: Path) -> None:
        self.root = os.open(root, _DIR_FLAGS)
        self._cached: tuple[Parts, int] | None = None  # the last parent opened: members come grouped by folder

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root)

    def __enter__(self) -> "DirWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_dir(self, at: int, name: str, whole: Parts, create: bool) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=at)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeArchive(f"{shown(whole)}: {name} is not a directory on the volume (a link is never followed)") from None
            raise
        try:
            os.mkdir(name, 0o700, dir_fd=at)
        except FileExistsError:
            pass
        fd = self._open_dir(at, name, whole, create=False)
        os.fchmod(fd, 0o755)
        return fd

    def parent(self, parts: Parts) -> int:
        """A descriptor of PARTS' parent directory, made as needed; owned by
        the writer (do not close it)."""
        where = parts[:-1]
        if self._cached is not None and self._cached[0] == where:
            return self._cached[1]
        self._drop_cache()
        fd = os.dup(self.root)
        try:
            for name in where:
                nxt = self._open_dir(fd, name, parts, create=True)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        self._cached = (where, fd)
        return fd

    def remove(self, parts: Parts) -> None:
        """Removes a file or link before a duplicate takes its name: unlinkat
        never follows the link."""
        os.unlink(parts[-1], dir_fd=self.parent(parts))

    def directory(self, parts: Parts, mode: int) -> None:
        at = self.parent(parts)
        fd = self._open_dir(at, parts[-1], parts, create=True)
        try:
            os.fchmod(fd, dir_mode(mode))
        finally:
            os.close(fd)

    def file(self, parts: Parts, chunks: Iterable[bytes], mode: int, mtime: float | None, holes: bool,
             progress: Callable[[int], None] | None = None, start: int = 0) -> int:
        """Writes CHUNKS as a new file (from START into the existing one:
        a resumed member); HOLES: all-zero chunks are skipped (a sparse
        member stays sparse). PROGRESS gets the length after each chunk.
        Returns the length."""
        flags = _NEW_FILE if not start else os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, 0o600, dir_fd=self.parent(parts))
        pos, skipped = start, False
        try:
            for chunk in chunks:
                if holes and chunk.count(0) == len(chunk):
                    pos += len(chunk)
                    skipped = True
                    continue
                view = memoryview(chunk)
                while view:
                    n = os.pwrite(fd, view, pos)
                    pos += n
                    view = view[n:]
                if progress is not None:
                    progress(pos)
            if skipped:
                os.ftruncate(fd, pos)
            os.fchmod(fd, file_mode(mode))
            if mtime is not None:
                try:
                    os.utime(fd, (mtime, mtime))
                except (OverflowError, ValueError):
                    pass  # a date the volume cannot hold: keep the time of writing
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its error (NFS reports write-back errors here) fails the member
        return pos

    def symlink(self, parts: Parts, target: str) -> None:
        os.symlink(target, parts[-1], dir_fd=self.parent(parts))

    def hardlink(self, parts: Parts, source: Parts) -> None:
        src_fd = os.dup(self.parent(source))
        try:
            os.link(source[-1], parts[-1], src_dir_fd=src_fd, dst_dir_fd=self.parent(parts), follow_symlinks=False)
        finally:
            os.close(src_fd)
