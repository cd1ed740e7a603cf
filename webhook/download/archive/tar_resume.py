"""A plain (uncompressed) tar streamed into the partial directory resumes
after a kill where the last run's bytes end on the volume: at a member
boundary, or inside the member it was writing.

The digest covers every byte of the archive, and a hash cannot be saved
half-way; but a plain tar is its headers, its members' bytes and zero
padding. So the run keeps the headers it read (`tar-resume.headers`) and,
every 1/64 of the archive (and at least once a second), a checkpoint (`tar-resume.json`): the archive offset,
the ETag it came with, each member's header length and data length, the
archive's own link map and the budget used. The next run rebuilds the hash
from those headers and the members' bytes read back from the volume (no
byte from the origin), removes what came after the checkpoint, and asks the
origin for the rest with `Range` and `If-Range`. A changed object, a
compressed stream, a sparse member, a pax global header or a duplicate name
(its earlier bytes are gone) make the run start over instead; anything
rebuilt wrongly shows as a digest mismatch, never as a published model.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from webhook.download.archive.budget import Budget
from webhook.download.archive.extract import Extractor
from webhook.download.archive.link_map import Entry
from webhook.download.archive.names import member_parts
from webhook.download.archive.unpack import CHUNK, tar_member
from webhook.download.errors import DownloadError
from webhook.download.remote import SCRATCH
from webhook.download.volume.checked_io import write_file_atomic

STATE, HEADERS = "tar-resume.json", "tar-resume.headers"
CHECKPOINT_SECONDS = 1.0       # a checkpoint at least this often,
CHECKPOINTS_PER_ARCHIVE = 64   # and every 1/64 of the archive (at least every MiB)


def _block(n: int) -> int:
    return (n + 511) // 512 * 512


class Invalid(Exception):
    """A checkpoint that cannot be trusted: start over."""


@dataclass
class State:
    validator: str
    offset: int = 0                 # the next archive byte to fetch
    headers: int = 0                # bytes of the headers file covered
    members: list[list[Any]] = field(default_factory=list)   # [path, header length, data length]
    entries: list[list[str]] = field(default_factory=list)   # the link map: [path, kind, target]
    used: int = 0                   # the budget used
    open: dict[str, Any] | None = None  # the member being written: name, header, size, done, mode, mtime


class Checkpoints:
    """The checkpoint files in TARGET's scratch folder."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.dir = target / SCRATCH / "tar-resume"
        self.state_path, self.headers_path = self.dir / STATE, self.dir / HEADERS

    def drop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def load(self) -> State | None:
        try:
            raw = json.loads(self.state_path.read_text())
            return State(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, state: State) -> None:
        write_file_atomic(self.state_path, json.dumps(state.__dict__).encode(), durable=False)

    def replay(self, state: State, hasher: Any) -> None:
        """Feeds HASHER the archive's first STATE.offset bytes, rebuilt from
        the headers kept and the members' bytes on the volume."""
        total = 0
        try:
            hf = open(self.headers_path, "rb")
        except OSError as err:
            raise Invalid(f"{self.headers_path.name}: {err.strerror}") from None
        with hf:
            def header(n: int) -> None:
                nonlocal total
                data = hf.read(n)
                if len(data) != n:
                    raise Invalid("the headers file is short")
                hasher.update(data)
                total += n

            def body(path: str, n: int) -> None:
                nonlocal total
                for chunk in _read_back(self.target, path, n):
                    hasher.update(chunk)
                total += n

            for path, hlen, dlen in state.members:
                header(hlen)
                if dlen:
                    body(path, dlen)
                    hasher.update(bytes(_block(dlen) - dlen))
                    total += _block(dlen) - dlen
            if state.open is not None:
                header(state.open["header"])
                body(state.open["path"], state.open["done"])
        if total != state.offset:
            raise Invalid(f"the checkpoint covers {total} bytes, not {state.offset}")

    def rewind(self, state: State) -> None:
        """Removes what was written after the checkpoint (headers included:
        new ones are appended after those it covers)."""
        try:
            os.truncate(self.headers_path, state.headers)
        except OSError as err:
            raise Invalid(f"{self.headers_path.name}: {err.strerror}") from None
        keep = {tuple(p.split("/")) for p, _k, _t in state.entries}
        for dirpath, dirs, names in os.walk(self.target, topdown=False):
            here = Path(dirpath)
            rel = here.relative_to(self.target).parts
            if rel and rel[0] == SCRATCH:
                continue
            for name in names + dirs:
                parts = rel + (name,)
                if parts == (SCRATCH,) or parts in keep:
                    continue
                p = here / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        if state.open is not None:
            fd = os.open(self.target / state.open["path"], os.O_WRONLY | os.O_NOFOLLOW)
            try:
                if os.fstat(fd).st_size < state.open["done"]:
                    raise Invalid(f"{state.open['path']} is shorter than the checkpoint says")
                os.ftruncate(fd, state.open["done"])
            finally:
                os.close(fd)


def _read_back(target: Path, path: str, n: int) -> Iterator[bytes]:
    """N bytes of PATH under TARGET, never through a link."""
    try:
        fd = os.open(target / path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise Invalid(f"{path}: {err.strerror}") from None
    try:
        left = n
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                raise Invalid(f"{path} is shorter than the checkpoint says")
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)


class _Tee:
    """What tarfile reads, with the archive offset of each byte; keeps the
    bytes from `keep_from` on (the headers after the last member's data)."""

    def __init__(self, stream: Any, base: int) -> None:
        self.stream, self.pos = stream, base
        self.buf, self.buf_start, self.keep_from = bytearray(), base, base

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        start, self.pos = self.pos, self.pos + len(data)
        lo = max(start, self.keep_from)
        if self.pos > lo:
            if not self.buf:
                self.buf_start = lo
            self.buf += data[lo - start:]
        return data

    def take(self, end: int) -> bytes:
        """The bytes from `keep_from` to END."""
        return bytes(self.buf[self.keep_from - self.buf_start:end - self.buf_start])

    def skip_to(self, offset: int) -> None:
        self.keep_from = offset
        drop = offset - self.buf_start
        if drop >= len(self.buf):
            self.buf.clear()
            self.buf_start = offset
        elif drop > 0:
            del self.buf[:drop]
            self.buf_start = offset


def _read_exactly(stream: Any, n: int) -> Iterator[bytes]:
    while n:
        chunk = stream.read(min(CHUNK, n))
        if not chunk:
            raise DownloadError("the archive is damaged or not a tar file: it ends inside a member")
        n -= len(chunk)
        yield chunk


def unpack_resumable(stream: Any, target: Path, budget: Budget, checkpoints: Checkpoints,
                     state: State | None, validator: Callable[[], str | None], archive_size: int | None) -> None:
    """Unpacks the plain tar STREAM into TARGET, from STATE (a checkpoint
    already replayed into the stream's hash and rewound to) or from the
    start, saving checkpoints as it goes while VALIDATOR() gives the ETag."""
    if state is None:
        checkpoints.drop()
        checkpoints.dir.mkdir(parents=True)
        checkpoints.headers_path.write_bytes(b"")
    last_save = time.monotonic()
    saving = True
    # At most this much of the archive is fetched again after a kill (plus what the origin had in flight).
    every = max(CHUNK, (archive_size or 0) // CHECKPOINTS_PER_ARCHIVE)
    saved_at = state.offset if state is not None else 0

    def save() -> None:
        nonlocal last_save, saved_at
        v = validator()
        if not saving or v is None:
            return
        at = cur.open["data_at"] + cur.open["done"] if cur.open is not None else cur.offset
        if at - saved_at < every and time.monotonic() - last_save < CHECKPOINT_SECONDS:
            return
        cur.validator = v
        if cur.open is not None:
            cur.offset = cur.open["data_at"] + cur.open["done"]
        cur.entries = [["/".join(p), e.kind, e.target] for p, e in ex.map.entries.items()]
        cur.used = ex.budget.used
        checkpoints.save(cur)
        last_save, saved_at = time.monotonic(), cur.offset

    cur = state or State(validator="")
    hfd = os.open(checkpoints.headers_path, os.O_WRONLY | os.O_APPEND)
    try:
        with Extractor(target, budget) as ex:
            if state is not None:
                ex.map.entries = {tuple(p.split("/")): Entry(k, t) for p, k, t in state.entries}
                ex.budget.used = state.used
                if state.open is not None:
                    o = state.open

                    def progress_open(done: int) -> None:
                        o["done"] = done
                        save()

                    ex.continue_file(o["name"], o["size"], o["done"], _read_exactly(stream, o["size"] - o["done"]),
                                     o["mode"], o["mtime"], progress=progress_open)
                    for _ in _read_exactly(stream, _block(o["size"]) - o["size"]):
                        pass
                    cur.members.append([o["path"], o["header"], o["size"]])
                    cur.offset += o["size"] - o["done"] + _block(o["size"]) - o["size"]
                    cur.open = None
            tee = _Tee(stream, cur.offset)
            base = cur.offset
            with tarfile.open(fileobj=tee, mode="r|*") as tf:
                for m in tf:
                    if saving and (m.sparse is not None or tf.pax_headers or ex.replaced or
                                   getattr(tf.fileobj, "comptype", "tar") != "tar"):
                        saving = False  # the archive's bytes cannot be rebuilt from the volume any more
                        checkpoints.drop()
                    data_at = base + m.offset_data
                    head = tee.take(data_at)
                    size = m.size if m.isreg() else 0
                    tee.skip_to(data_at + _block(size))
                    if saving:
                        os.write(hfd, head)
                        cur.headers += len(head)
                        path = "/".join(member_parts(m.name))
                        cur.open = {"name": m.name, "path": path, "header": len(head), "size": size, "done": 0,
                                    "mode": m.mode, "mtime": m.mtime, "data_at": data_at}
                        cur.offset = data_at

                    def progress(done: int) -> None:
                        if cur.open is not None:
                            cur.open["done"] = done
                            save()

                    tar_member(tf, m, ex, progress if saving and m.isreg() else None)
                    if saving:
                        cur.members.append([cur.open["path"] if size else "", len(head), size])
                        cur.open = None
                        cur.offset = data_at + _block(size)
                        save()
            ex.finish()
    except (tarfile.TarError, EOFError) as err:
        raise DownloadError(f"the archive is damaged or not a tar file: {err}") from None
    finally:
        os.close(hfd)
    checkpoints.drop()
