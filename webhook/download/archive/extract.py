"""One member at a time, the same for tar and zip: the name normalised,
judged against the archive's own link map, charged to the budget, then
written through the directory-descriptor writer. Nothing here reads the
archive format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from webhook.download.archive.budget import Budget
from webhook.download.archive.dir_writer import DirWriter
from webhook.download.archive.link_map import DIR, FILE, SYMLINK, LinkMap
from webhook.download.archive.names import UnsafeArchive, member_parts, shown


class Extractor:
    def __init__(self, target: Path, budget: Budget) -> None:
        self.map = LinkMap()
        self.budget = budget
        self.writer = DirWriter(target)
        self.replaced = False  # a duplicate took an earlier member's name (its bytes are gone from the volume)

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "Extractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _place(self, name: str, kind: str) -> tuple[str, ...]:
        parts = member_parts(name)
        if not parts:
            if kind == DIR:
                return parts
            raise UnsafeArchive(f"{name!r}: a {kind} without a name")
        self.map.check_parents(parts)
        if self.map.replaces(parts, kind):
            self.writer.remove(parts)
            self.replaced = True
        return parts

    def directory(self, name: str, mode: int) -> None:
        parts = self._place(name, DIR)
        if parts:  # the model's directory itself keeps its own mode
            self.writer.directory(parts, mode)
            self.map.record(parts, DIR)

    def file(self, name: str, size: int, chunks: Iterable[bytes], mode: int, mtime: float | None,
             sparse: bool = False, progress: Callable[[int], None] | None = None) -> None:
        parts = self._place(name, FILE)
        self.budget.charge(size, shown(parts))
        # Recorded first: a failed write leaves a name the map knows, so a
        # duplicate after it replaces it rather than meeting an unknown file.
        self.map.record(parts, FILE)
        written = self.writer.file(parts, _at_most(chunks, size, shown(parts)), mode, mtime, holes=sparse,
                                   progress=progress)
        if written != size:
            raise UnsafeArchive(f"{shown(parts)}: {written} bytes where the archive announced {size}")

    def continue_file(self, name: str, size: int, done: int, chunks: Iterable[bytes], mode: int,
                      mtime: float | None, progress: Callable[[int], None] | None = None) -> None:
        """The rest of a member a killed run wrote DONE bytes of (already
        in the map and charged to the budget)."""
        parts = member_parts(name)
        written = self.writer.file(parts, _at_most(chunks, size - done, shown(parts)), mode, mtime, holes=False,
                                   progress=progress, start=done)
        if written != size:
            raise UnsafeArchive(f"{shown(parts)}: {written} bytes where the archive announced {size}")

    def symlink(self, name: str, target: str) -> None:
        parts = self._place(name, SYMLINK)
        self.map.resolve(parts, target)
        self.map.record(parts, SYMLINK, target)
        self.writer.symlink(parts, target)

    def hardlink(self, name: str, target: str) -> None:
        parts = member_parts(name)
        if not parts:
            raise UnsafeArchive(f"{name!r}: a hard link without a name")
        source = self.map.hardlink_source(parts, target)
        if source == parts:
            return  # a link to itself: already there
        self._place(name, FILE)
        self.map.record(parts, FILE)
        self.writer.hardlink(parts, source)

    def finish(self) -> None:
        """After the last member: every symlink resolves inside, through
        the links that came after it."""
        self.map.check_all_links()


def _at_most(chunks: Iterable[bytes], size: int, name: str) -> Iterable[bytes]:
    """CHUNKS, refused past SIZE bytes (a zip entry's data longer than its
    directory says): the budget was charged with SIZE."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            raise UnsafeArchive(f"{name}: more bytes than the {size} the archive announced")
        yield chunk
