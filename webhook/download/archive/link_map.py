"""The archive's own map of what it has made so far (directories, files,
symlinks with their targets), kept while it streams: a member is judged by
what the archive itself made, never by reading the volume. Pure.

The rules, the same for tar and zip:
- a member's parents must be directories (made by the archive, or implied
  by a deeper name); a path through a symlink the archive made is refused;
- a symlink's target, resolved through the symlinks of the map, must stay
  inside the model's directory and outside the reserved folder; checked
  when the link arrives and again at the end (a later member can turn a
  component of the target into a link);
- a hard link must name a regular file the archive made before it;
- a duplicate name replaces a file or a link (the old one is removed, never
  written through); a directory stays a directory.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from webhook.download.archive.names import MAX_PATH, Parts, UnsafeArchive, member_parts, shown
from webhook.download.remote import SCRATCH

DIR, FILE, SYMLINK = "directory", "file", "symlink"
MAX_HOPS = 40  # Linux's own limit on symlinks followed in one lookup (MAXSYMLINKS)


class _Outside(Exception):
    pass


class _TooManyHops(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    kind: str
    target: str = ""  # a symlink's text


class LinkMap:
    def __init__(self) -> None:
        self.entries: dict[Parts, Entry] = {}

    def kind(self, parts: Parts) -> str | None:
        e = self.entries.get(parts)
        return e.kind if e else None

    def check_parents(self, parts: Parts) -> None:
        """Every parent of PARTS is a directory or not made yet."""
        for i in range(1, len(parts)):
            e = self.entries.get(parts[:i])
            if e is None or e.kind == DIR:
                continue
            what = f"the symlink {shown(parts[:i])} the archive made" if e.kind == SYMLINK else f"the file {shown(parts[:i])}"
            raise UnsafeArchive(f"{shown(parts)}: its path passes through {what}")

    def replaces(self, parts: Parts, kind: str) -> bool:
        """True when PARTS already exists and must be removed first (a file
        or link replaced); refuses a directory replaced by anything else or
        a directory over a file or link."""
        old = self.kind(parts)
        if old is None:
            return False
        if old == DIR or kind == DIR:
            if old == kind:
                return False
            raise UnsafeArchive(f"{shown(parts)}: a {kind} where the archive already made a {old}")
        return True

    def record(self, parts: Parts, kind: str, target: str = "") -> None:
        for i in range(1, len(parts)):
            self.entries.setdefault(parts[:i], Entry(DIR))
        self.entries[parts] = Entry(kind, target)

    def resolve(self, link: Parts, target: str) -> Parts:
        """Where the symlink LINK -> TARGET leads, through the map's own
        symlinks; refuses a target outside the model's directory or in the
        reserved folder."""
        if not target or "\0" in target:
            raise UnsafeArchive(f"{shown(link)}: a symlink with an empty or NUL target")
        if posixpath.isabs(target):
            raise UnsafeArchive(f"{shown(link)}: a symlink to the absolute path {target}")
        if len(target.encode("utf-8", "surrogateescape")) > MAX_PATH:
            raise UnsafeArchive(f"{shown(link)}: a symlink target longer than {MAX_PATH} bytes")
        try:
            where = self._walk(list(link[:-1]), target, [0])
        except _Outside:
            raise UnsafeArchive(f"{shown(link)}: a symlink to {target}, outside the model's directory") from None
        except _TooManyHops:
            raise UnsafeArchive(f"{shown(link)}: a symlink to {target}, through more than {MAX_HOPS} symlinks") from None
        if where and where[0] == SCRATCH:
            raise UnsafeArchive(f"{shown(link)}: a symlink to {target}, into the reserved {SCRATCH}/")
        return tuple(where)

    def _walk(self, at: list[str], target: str, hops: list[int]) -> list[str]:
        """Resolves TARGET from the directory AT as the kernel would, with
        the map standing in for the volume (no PATH_MAX: nothing here stops
        resolving early)."""
        for comp in target.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not at:
                    raise _Outside()
                at.pop()
                continue
            at.append(comp)
            e = self.entries.get(tuple(at))
            if e is not None and e.kind == SYMLINK:
                hops[0] += 1
                if hops[0] > MAX_HOPS or posixpath.isabs(e.target):
                    raise _TooManyHops() if hops[0] > MAX_HOPS else _Outside()
                at.pop()
                at = self._walk(at, e.target, hops)
        return at

    def hardlink_source(self, name: Parts, linkname: str) -> Parts:
        """The file a hard link NAME -> LINKNAME gets a second name of: a
        regular file the archive made, reached through directories only."""
        try:
            src = member_parts(linkname)
        except UnsafeArchive as err:
            raise UnsafeArchive(f"{shown(name)}: a hard link to {err.problem}") from None
        self.check_parents(src)
        if self.kind(src) != FILE:
            raise UnsafeArchive(f"{shown(name)}: a hard link to {linkname}, which is not a file the archive made before it")
        return src

    def check_all_links(self) -> None:
        """At the end: every symlink still resolves inside, through the
        links that came after it."""
        for parts, e in self.entries.items():
            if e.kind == SYMLINK:
                self.resolve(parts, e.target)
