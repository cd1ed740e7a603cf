"""The shared-volume protocol: fast path, lock or wait, download into the
partial directory, verify, publish atomically.

Every replica runs the same loop: if the marker is there, exit 0; else try
the lock; the one that gets it downloads while the others poll for the
marker, print the holder's progress, and take over if the holder dies.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from webhook.download.verify.checks import how_verified, summary
from webhook.download.errors import ChecksumError, KnownBadDigest, WriteError
from webhook.download.verify import known_bad
from webhook.download.volume.checked_io import is_disk_full, tree_size, write_file_atomic
from webhook.download.volume.lock import Lock, StaleWatch, break_lock, current_owner, holder_is_dead, read_lock
from webhook.download.progress import Progress, Ticker, format_line, read_progress, terminal_bar
from webhook.download.volume.publish import Layout, build_marker, list_tree, publish, read_marker, touch_marker
from webhook.download.progress import format_duration
from webhook.download.remote import FileRecord
from webhook.quantity import describe as format_bytes

if TYPE_CHECKING:
    from webhook.download.archive.budget import Budget
    from webhook.download.remote import Listing
    from webhook.download.fetching.transfer import Transfer


@dataclass
class Settings:
    source: str
    dest: Path
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None        # the policy's size: an archive's budget, and whether a tar can be kept on the volume
    include: list[str] | None = None
    jobs: int = 16
    stall: float = 60.0            # seconds without a byte before a connection is retried
    heartbeat: float = 5.0         # seconds between lock refreshes
    stale_after: float = 60.0      # seconds without a heartbeat before a lock is taken over
    progress_interval: float = 5.0
    poll: float = 1.0              # waiters' marker poll
    retries: int = 8
    backoff: float = 1.0
    dragonfly_socket: str | None = None    # the node's dfdaemon socket: fetch through Dragonfly
    dragonfly_if_unavailable: str = "direct"
    out: TextIO = field(default=sys.stdout)


def say(out: TextIO, text: str) -> None:
    print(f"model-cache: {text}", file=out, flush=True)


def fast_path(s: Settings) -> bool:
    """True (and a use recorded) if the model is already complete."""
    marker = read_marker(s.dest)
    if marker is None:
        return False
    touch_marker(s.dest)
    if marker.get("source") not in (None, s.source):
        print(f"model-cache: warning: {s.dest} holds {marker.get('source')}, not {s.source}; "
              f"serving it as is (delete the directory to fetch the new source)", file=sys.stderr, flush=True)
    files = marker.get("files", [])
    say(s.out, f"{s.dest} is complete ({len(files)} files, {format_bytes(marker.get('total_size', 0))}, "
               f"revision {marker.get('resolved_revision') or marker.get('revision') or '-'}); nothing to download")
    return True


def run(s: Settings) -> int:
    s.dest = Path(s.dest).absolute()
    if fast_path(s):
        return 0
    from webhook.download.uri import parse_source

    parse_source(s.source)  # a bad URI fails before any lock is taken
    layout = Layout(s.dest)
    layout.parent.mkdir(parents=True, exist_ok=True)
    me = current_owner()
    lock = Lock(layout.lock, me)
    watch = StaleWatch(s.stale_after)
    next_wait_line = 0.0
    while True:
        if read_marker(s.dest) is not None:
            fast_path(s)
            return 0
        # Only try when the lock looks free: an attempt writes a file.
        if not layout.lock.exists() and lock.try_acquire():
            try:
                if fast_path(s):  # published between our check and the lock
                    return 0
                return download(s, layout, lock)
            finally:
                lock.release()
        state = read_lock(layout.lock)
        if state is None:
            continue  # released just now: look for the marker again
        holder = state.owner.describe() if state.owner else "an unknown holder"
        if state.owner is not None and holder_is_dead(state.owner, me):
            say(s.out, f"lock {layout.lock} is held by {holder}, which is gone; taking over")
            break_lock(layout.lock, state)
            continue
        token = state.owner.token if state.owner else None
        if watch.observe((token, state.mtime_ns, state.ino)):
            say(s.out, f"lock {layout.lock}: no heartbeat from {holder} for {watch.unchanged_for():.0f}s; taking over")
            break_lock(layout.lock, state)
            watch = StaleWatch(s.stale_after)
            continue
        now = time.monotonic()
        if now >= next_wait_line:
            next_wait_line = now + s.progress_interval
            snap = read_progress(layout.progress)
            detail = f": {format_line(f'{layout.parent.name}/{s.dest.name}', snap)}" if snap else ""
            say(s.out, f"waiting for {holder} to download {s.dest}{detail}")
        time.sleep(s.poll)


def _prepare_partial(layout: Layout, key: str) -> None:
    """Keeps a partial directory only if it was for the same content."""
    from webhook.download.volume.checked_io import remove_tree
    from webhook.download.remote import SCRATCH

    keyfile = layout.partial / SCRATCH / "plan-key"
    if layout.partial.exists():
        try:
            old = keyfile.read_text()
        except OSError:
            old = None
        if old != key:
            remove_tree(layout.partial)
    (layout.partial / SCRATCH).mkdir(parents=True, exist_ok=True)
    if not keyfile.exists():
        write_file_atomic(keyfile, key.encode())


def _interrupted_publish(layout: Layout, s: Settings, resolved: str) -> dict | None:
    """A partial directory that already holds its marker was complete and
    verified when its holder was killed between writing the marker and the
    rename: publish it instead of fetching it again."""
    marker = read_marker(layout.partial)
    if marker is None:
        return None
    if marker.get("source") == s.source and marker.get("revision") == s.revision and \
            marker.get("resolved_revision") == (resolved or s.revision):
        return marker
    return None


def _clean_leftovers(layout: Layout) -> None:
    """What killed runs left beside the model: lock attempts, directories set
    aside by a publish or an eviction. Only old ones: a live process may be
    about to use a fresh one."""
    import shutil

    now = time.time()
    for p in layout.parent.glob(f".{layout.dest.name}.*"):
        try:
            if now - p.lstat().st_mtime < 600:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
        except OSError:
            pass


def _fetch(transfer: "Transfer", listing: "Listing", s: Settings, poll: Callable[[], None],
           keep_archive: bool) -> list[FileRecord]:
    """The model's files in the partial directory, verified: fetched, or an
    archive fetched and unpacked, or a tar unpacked as it streams in. An
    archive refused (an unsafe member, past its budget) leaves nothing."""
    from webhook.download.archive.unpack import Budget, UnsafeArchive
    from webhook.download.errors import ArchiveTooLarge
    from webhook.download.volume.checked_io import remove_tree

    try:
        return _fetch_archive(transfer, listing, s, poll, Budget(s.size, s.dest.parent.name), keep_archive) \
            if listing.archive is not None else _fetch_files(transfer, listing, poll)
    except (UnsafeArchive, ArchiveTooLarge):
        remove_tree(transfer.partial)
        raise


def _fetch_files(transfer: "Transfer", listing: "Listing", poll: Callable[[], None]) -> list[FileRecord]:
    from webhook.download.fetching.scheduler import Scheduler

    return Scheduler(transfer).run(listing.files, poll)


def _fetch_archive(transfer: "Transfer", listing: "Listing", s: Settings, poll: Callable[[], None],
                   budget: "Budget", keep: bool) -> list[FileRecord]:
    from webhook.download.archive.tar_stream import fetch_and_unpack
    from webhook.download.archive.unpack import streaming_note, unpack_kept

    partial, f = transfer.partial, listing.files[0]
    assert listing.archive is not None
    if not keep:
        say(s.out, f"unpacking the {listing.archive} archive as it streams in ({streaming_note(listing.archive)})")
        fetch_and_unpack(transfer, f, partial, poll, budget, resumable=listing.archive == ".tar")
        return list_tree(partial)
    _fetch_files(transfer, listing, poll)  # resumable, in parts, verified before a member is read
    archive = partial / f.path
    say(s.out, f"unpacking {format_bytes(archive.stat().st_size)} archive")
    unpack_kept(listing.archive, archive, partial, budget)
    archive.unlink()  # room for nothing else in the publish's write-back
    return list_tree(partial)


def download(s: Settings, layout: Layout, lock: Lock) -> int:
    from webhook.download.archive.unpack import is_streamed, keeps_archive
    from webhook.download.remote import FetchOptions
    from webhook.download.sources import make_source
    from webhook.download.volume.space import VolumeSpace, not_enough_before_start, ran_out
    from webhook.download.fetching.transfer import Transfer
    from webhook.download.uri import parse_source

    spec = parse_source(s.source)
    progress = Progress()
    listing = None
    keep_archive = False  # an archive fetched whole onto the volume before it is unpacked
    label = f"{layout.parent.name}/{s.dest.name}"
    ticker = Ticker(label, progress, lock.heartbeat, s.heartbeat, s.progress_interval, layout.progress, s.out,
                    bar=terminal_bar(label))
    ticker.start()
    started = time.monotonic()

    def poll() -> None:
        if ticker.error is not None:
            raise ticker.error

    try:
        say(s.out, f"downloading {s.source} (revision {s.revision}) into {s.dest}")
        source = make_source(spec, revision=s.revision, sha256=s.sha256, include=s.include, stall=s.stall, jobs=s.jobs,
                             dragonfly_socket=s.dragonfly_socket, dragonfly_if_unavailable=s.dragonfly_if_unavailable)
        listing = source.listing()
        poll()
        _clean_leftovers(layout)
        done = _interrupted_publish(layout, s, listing.revision)
        if done is not None:
            say(s.out, "an earlier run was killed while publishing: finishing its publish")
            lock.heartbeat()
            publish(layout, done)
            return 0
        bad = known_bad.recalled(s.dest, s.source, listing.files)
        if bad is not None:
            raise KnownBadDigest(known_bad.refusal(s.dest, *bad))
        _prepare_partial(layout, listing.key)
        progress.set_plan(listing.total, len(listing.files))
        streamed = listing.archive is not None and is_streamed(listing.archive)
        # A streamed tar's contents are not its size (headers, compression): ENOSPC tells.
        if listing.total is not None and not streamed:
            refused = not_enough_before_start(layout.parent, listing.total - tree_size(layout.partial), listing.total,
                                              VolumeSpace.of(layout.parent))
            if refused is not None:
                raise refused
        say(s.out, f"{len(listing.files)} file(s), {format_bytes(listing.total) if listing.total is not None else 'size unknown'}"
                   + (f", revision {listing.revision}" if listing.revision else ""))
        transfer = Transfer(source, layout.partial, progress,
                            FetchOptions(jobs=s.jobs, retries=s.retries, backoff=s.backoff))
        try:
            if listing.archive is not None:
                keep_archive = keeps_archive(listing.archive, listing.files[0].size, s.size, layout.partial)
            records = _fetch(transfer, listing, s, poll, keep_archive)
        except ChecksumError as err:
            if not isinstance(err.mismatch, known_bad.Mismatch):
                raise
            raise ChecksumError(f"{err}; {known_bad.remember(s.dest, s.source, err.mismatch)}", err.mismatch) from None
        archived = listing.archive is not None
        say(s.out, f"archive verified: {how_verified(listing.files[0].check)}" if archived
            else summary((r.path, r.check) for r in records))
        poll()
        lock.heartbeat()  # still ours, right before the publish
        marker = build_marker(source=s.source, revision=s.revision, resolved=listing.revision, records=records,
                              archive=listing.files[0].check if archived else None, archived=archived)
        publish(layout, marker)
        known_bad.forget(s.dest)
    except OSError as err:
        if is_disk_full(err):
            raise ran_out(layout.parent, layout.partial, VolumeSpace.of(layout.parent),
                          model_size=listing.total if listing is not None and listing.archive is None else None,
                          archive=listing.archive if listing is not None else None,
                          archive_size=listing.total if listing is not None else None,
                          archive_kept=keep_archive) from None
        if err.errno not in (errno.EACCES, errno.EPERM) and err.errno is not None:
            raise WriteError(
                f"writing {err.filename or layout.partial} failed: {os.strerror(err.errno)} "
                f"({errno.errorcode.get(err.errno, err.errno)}); nothing was published; check the volume (the node's "
                f"kernel log, the storage backend); the next start resumes from the data last synced without error"
            ) from None
        raise
    finally:
        ticker.stop()
        try:
            layout.progress.unlink()
        except OSError:
            pass
    took = time.monotonic() - started
    snap = progress.snapshot()
    rate = snap.fetched / took if took > 0 else 0.0
    say(s.out, f"{s.dest} is complete: {len(records)} files, {format_bytes(marker['total_size'])}; fetched "
               f"{format_bytes(snap.fetched)} in {format_duration(took)} ({format_bytes(rate)}/s)")
    return 0
