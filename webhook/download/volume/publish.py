"""The destination's layout, the completion marker, and the atomic publish.

    <root>/<model>/<rev>/              the model, published by one rename
    <root>/<model>/<rev>/.model-cache.json   the marker
    <root>/<model>/<rev>.partial/      the download in progress (resumable)
    <root>/<model>/<rev>.lock          the lock
    <root>/<model>/<rev>.progress      the holder's numbers, for waiters

The marker is the last file written into the partial directory, and one
rename(2) then makes the directory and its marker appear together: there is
no moment at which DIR exists without its marker, and readers that look for
the marker never see a partial model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from webhook.download.verify.checks import SIZE_ONLY, Check
from webhook.download.remote import SCRATCH, FileRecord
from webhook.download.volume.checked_io import fsync_dir, sync_filesystem, write_file_atomic

MARKER = ".model-cache.json"
MARKER_VERSION = 1


@dataclass(frozen=True)
class Layout:
    dest: Path

    @property
    def parent(self) -> Path:
        return self.dest.parent

    @property
    def partial(self) -> Path:
        return self.dest.with_name(self.dest.name + ".partial")

    @property
    def lock(self) -> Path:
        return self.dest.with_name(self.dest.name + ".lock")

    @property
    def progress(self) -> Path:
        return self.dest.with_name(self.dest.name + ".progress")

    @property
    def marker(self) -> Path:
        return self.dest / MARKER


def read_marker(dest: Path) -> dict | None:
    """The marker's content if the model at `dest` is complete, else None."""
    try:
        data = json.loads((dest / MARKER).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("complete") is True else None


def touch_marker(dest: Path) -> None:
    """Records a use for gc (the marker's mtime is the last-used time)."""
    try:
        os.utime(dest / MARKER)
    except OSError:
        pass  # a read-only volume: gc then sees the completion time


def _verified(check: Check | None) -> dict:
    """What a file (or an archive) was verified against, for the marker."""
    if check is None:
        return {"verified": SIZE_ONLY}
    fields = {"verified": check.algorithm, "checksum": check.value, "checksum_source": check.source}
    if check.part_size:
        fields["checksum_part_size"] = check.part_size
    return fields


def build_marker(*, source: str, revision: str, resolved: str, records: list[FileRecord],
                 archive: Check | None = None, archived: bool = False) -> dict:
    """The completion marker. `archived`: the records are an unpacked
    archive's members, verified through the archive (`archive`)."""
    files = sorted(({"path": r.path, "size": r.size, **({} if archived else _verified(r.check)),
                     **({"etag": r.etag} if r.etag else {})} for r in records), key=lambda d: d["path"])
    marker = {
        "complete": True,
        "version": MARKER_VERSION,
        "source": source,
        "revision": revision,
        "resolved_revision": resolved or revision,
        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "total_size": sum(r.size for r in records),
        "files": files,
    }
    if archived:
        marker["archive"] = _verified(archive)
    return marker


def list_tree(root: Path) -> list[FileRecord]:
    """Regular files under root (an unpacked archive), with sizes."""
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(dirpath) == root and d == SCRATCH)]
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out.append(FileRecord(p.relative_to(root).as_posix(), p.stat().st_size))
    return out


def fsync_tree_dirs(root: Path) -> None:
    """Each file was fsynced when completed; the directories hold the renames."""
    for dirpath, _dirs, _names in os.walk(root):
        fsync_dir(Path(dirpath))


def publish(layout: Layout, marker: dict) -> None:
    """partial -> dest in one rename, with the marker inside."""
    partial, dest = layout.partial, layout.dest
    shutil.rmtree(partial / SCRATCH, ignore_errors=True)
    # Small files and unpacked archives were not fsynced one by one: write
    # everything back (errors raise) before the marker can exist.
    sync_filesystem(partial)
    fsync_tree_dirs(partial)
    write_file_atomic(partial / MARKER, json.dumps(marker, indent=1).encode() + b"\n")
    fsync_dir(partial)
    if dest.exists():
        # Only an empty or marker-less leftover can be here (we hold the
        # lock and checked the marker): an empty directory is replaced by
        # rename itself, anything else is moved aside and deleted.
        try:
            dest.rmdir()
        except OSError:
            aside = layout.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, aside)
            shutil.rmtree(aside, ignore_errors=True)
    os.rename(partial, dest)
    fsync_dir(layout.parent)
