"""`model-cache gc`: evicts the least recently used complete models until the
cache fits in --max-size.

The last use of a model is its marker's mtime, which the downloader's fast
path refreshes on each start. A model is never evicted while its lock exists
(being downloaded or evicted by someone else) or when it was used within
--min-age. Eviction takes the model's lock, renames the directory aside (the
model disappears at once, so no new pod starts on a half-deleted one) and
then deletes it.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from webhook.download.volume.lock import Lock, break_lock, current_owner, read_lock
from webhook.download.volume.publish import MARKER, Layout, read_marker
from webhook.download.progress import format_duration
from webhook.quantity import describe as format_bytes


@dataclass(frozen=True)
class Entry:
    dest: Path
    size: int
    last_used: float   # epoch seconds
    locked: bool

    @property
    def name(self) -> str:
        return f"{self.dest.parent.name}/{self.dest.name}"


# A lock's heartbeat is seconds; gc runs rarely and can afford a margin far
# beyond any clock skew before it calls a lock abandoned (e.g. a downloader
# killed between its publish and its unlock).
ABANDONED_LOCK_SECONDS = 3600.0


def _lock_is_live(lock: Path) -> bool:
    try:
        return time.time() - lock.stat().st_mtime < ABANDONED_LOCK_SECONDS
    except FileNotFoundError:
        return False


def complete_models(root: Path) -> Iterator[tuple[Path, dict, float]]:
    """Each complete model under root/<model>/<revision>/, with its marker and
    its last use (the marker's mtime). A directory without a complete marker (a
    partial download, a lock, another program's files) is never yielded, so
    never touched. Read by `gc` and by the node agent's inventory."""
    for model in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for rev in sorted(model.iterdir()):
            if not rev.is_dir() or rev.name.startswith(".") or rev.name.endswith(".partial"):
                continue
            marker = read_marker(rev)
            if marker is None:
                continue
            try:
                used = (rev / MARKER).stat().st_mtime
            except OSError:
                continue
            yield rev, marker, used


def scan(root: Path) -> list[Entry]:
    """Complete models under root/<model>/<revision>/."""
    return [Entry(rev, int(marker.get("total_size", 0)), used, _lock_is_live(Layout(rev).lock))
            for rev, marker, used in complete_models(root)]


def choose(entries: list[Entry], max_size: int, min_age: float, now: float) -> tuple[list[Entry], int]:
    """Pure: which entries to evict, oldest use first, and the total after."""
    total = sum(e.size for e in entries)
    evict: list[Entry] = []
    for e in sorted(entries, key=lambda e: e.last_used):
        if total <= max_size:
            break
        if e.locked or now - e.last_used < min_age:
            continue
        evict.append(e)
        total -= e.size
    return evict, total


def evict(entry: Entry, min_age: float) -> bool:
    """Removes one model under its lock; False if it was busy or used meanwhile."""
    layout = Layout(entry.dest)
    lock = Lock(layout.lock, current_owner())
    state = read_lock(layout.lock)
    if state is not None and not _lock_is_live(layout.lock):
        break_lock(layout.lock, state)
    if not lock.try_acquire():
        return False
    try:
        try:
            used = (entry.dest / MARKER).stat().st_mtime
        except OSError:
            return False
        if used != entry.last_used or time.time() - used < min_age:
            return False  # a pod started on it since the scan
        aside = layout.parent / f".{entry.dest.name}.evicted-{uuid.uuid4().hex[:8]}"
        os.rename(entry.dest, aside)
    finally:
        lock.release()
    shutil.rmtree(aside, ignore_errors=True)
    return True


def run_gc(root: Path, max_size: int, min_age: float, dry_run: bool, out: TextIO) -> int:
    if not root.is_dir():
        from webhook.download.errors import UsageError

        raise UsageError(f"--root {root}: no such directory")
    now = time.time()
    entries = scan(root)
    total = sum(e.size for e in entries)
    victims, after = choose(entries, max_size, min_age, now)
    verb = "would evict" if dry_run else "evicting"
    print(f"model-cache: gc {root}: {len(entries)} complete models, {format_bytes(total)}; "
          f"limit {format_bytes(max_size)}", file=out, flush=True)
    freed = 0
    for e in victims:
        print(f"model-cache: {verb} {e.name} ({format_bytes(e.size)}, last used {format_duration(now - e.last_used)} ago)",
              file=out, flush=True)
        if dry_run or evict(e, min_age):
            freed += e.size
        else:
            print(f"model-cache: skipped {e.name}: in use since the scan", file=out, flush=True)
    left = total - freed
    if left > max_size:
        busy = sum(1 for e in entries if e.locked or now - e.last_used < min_age)
        print(f"model-cache: still {format_bytes(left)} over the limit's {format_bytes(max_size)}: "
              f"{busy} models are locked or used within --min-age", file=out, flush=True)
    print(f"model-cache: gc {'would free' if dry_run else 'freed'} {format_bytes(freed)}", file=out, flush=True)
    return 0
