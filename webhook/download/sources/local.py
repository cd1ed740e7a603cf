"""file:///path: a copy from a mounted directory (an OCI image's files, a
read-only volume). Same fetcher, so resume and progress work the same."""

from __future__ import annotations

import os
from pathlib import Path

from webhook.download.errors import NotFoundError
from webhook.download.remote import CHUNK, Body, Listing, RemoteFile
from webhook.download.uri import SourceSpec, matches


class LocalSource:
    def __init__(self, spec: SourceSpec, *, include: list[str] | None) -> None:
        self.root = Path(spec.path)
        self.include = include
        self.label = spec.uri

    def listing(self) -> Listing:
        if self.root.is_file():
            st = self.root.stat()
            return Listing([RemoteFile(self.root.name, st.st_size, ref=str(self.root))], revision="",
                        key=f"file|{self.root}|{st.st_size}|{st.st_mtime_ns}")
        if not self.root.is_dir():
            raise NotFoundError(f"{self.label}: no such file or directory; is the volume mounted?")
        files = []
        for dirpath, dirs, names in os.walk(self.root):
            dirs.sort()
            for name in sorted(names):
                full = Path(dirpath) / name
                if not full.is_file():
                    continue  # sockets, broken links
                rel = full.relative_to(self.root).as_posix()
                if matches(rel, self.include):
                    files.append(RemoteFile(rel, full.stat().st_size, ref=str(full)))
        if not files:
            raise NotFoundError(f"{self.label}: no files" + (" match --include" if self.include else ""))
        return Listing(files, revision="", key=f"file|{self.root}")

    ranged = False  # a local copy gains nothing from parallel parts

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body:
        fh = open(f.ref, "rb")
        fh.seek(offset)

        def chunks():
            while True:
                buf = fh.read(CHUNK)
                if not buf:
                    return
                yield buf

        return Body(chunks(), close=fh.close)
