"""Progress: counters the fetchers add to, a pure line formatter, and the
ticker thread that prints a line every few seconds, refreshes the lock's
heartbeat and publishes the numbers for waiters in `<rev>.progress`."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TextIO

from webhook.download.lines import emit
from webhook.quantity import describe as format_bytes


@dataclass
class Snapshot:
    done: int           # bytes present (kept from earlier runs + fetched now)
    total: int | None   # bytes expected, None while unknown
    fetched: int        # bytes fetched by this run (for the rate)
    elapsed: float      # seconds since this run started fetching
    files_done: int
    files_total: int
    rate: float         # bytes/s over the last interval


def format_line(label: str, s: Snapshot) -> str:
    """`llama/main: 1.20 GiB / 16.0 GiB (7.5%), 3/12 files, 85.3 MB/s, ETA 2m53s`"""
    parts = [f"{label}: {format_bytes(s.done)}"]
    if s.total:
        pct = 100.0 * s.done / s.total if s.total else 100.0
        parts[0] += f" / {format_bytes(s.total)} ({pct:.1f}%)"
    if s.files_total > 1:
        parts.append(f"{s.files_done}/{s.files_total} files")
    parts.append(f"{s.rate / 1e6:.1f} MB/s")
    if s.total and s.rate > 0 and s.done < s.total:
        parts.append(f"ETA {format_duration((s.total - s.done) / s.rate)}")
    return ", ".join(parts)


class Progress:
    """Thread-safe counters; fetchers call add(), the ticker reads snapshot()."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.total: int | None = None
        self.files_total = 0
        self._done = 0
        self._fetched = 0
        self._files_done = 0
        self._start = clock()
        self._last_t = self._start
        self._last_fetched = 0
        self._rate = 0.0

    def set_plan(self, total: int | None, files: int) -> None:
        with self._lock:
            self.total, self.files_total = total, files
            self._start = self._last_t = self._clock()

    def add(self, n: int, fetched: bool = True) -> None:
        """n bytes now on disk; fetched=False for bytes kept from an earlier run.
        Negative n undoes bytes dropped (a restarted file)."""
        with self._lock:
            self._done += n
            if fetched:
                self._fetched += n

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            dt = now - self._last_t
            if dt >= 0.5:
                inst = (self._fetched - self._last_fetched) / dt
                # Smooth over a few intervals so one slow tick does not swing the ETA.
                self._rate = inst if self._rate == 0 else 0.5 * self._rate + 0.5 * inst
                self._last_t, self._last_fetched = now, self._fetched
            return Snapshot(self._done, self.total, self._fetched, now - self._start,
                            self._files_done, self.files_total, self._rate)


class Ticker(threading.Thread):
    """Runs `beat` every `heartbeat` seconds and prints progress every `interval`.
    An exception from `beat` (a lost lock) is kept in `.error` and stops it."""

    def __init__(self, label: str, progress: Progress, beat: Callable[[], None], heartbeat: float,
                 interval: float, progress_file: Path | None, out: TextIO = sys.stdout) -> None:
        super().__init__(name="model-cache-ticker", daemon=True)
        self.label, self.progress, self.beat = label, progress, beat
        self.heartbeat, self.interval = heartbeat, interval
        self.progress_file = progress_file
        self.out = out
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)

    def run(self) -> None:
        next_print = time.monotonic() + self.interval
        while not self._stop_event.wait(self.heartbeat):
            try:
                self.beat()
            except OSError as err:
                # A hiccup of the shared file system: keep downloading; if it
                # lasts, waiters take over and our next beat sees LockLost.
                emit(f"model-cache: warning: lock heartbeat failed: {err}", self.out)
            except BaseException as err:  # noqa: BLE001 - LockLost, handed to the main thread
                self.error = err
                return
            if time.monotonic() >= next_print:
                next_print += self.interval
                self.print_now()

    def print_now(self) -> None:
        snap = self.progress.snapshot()
        emit(f"model-cache: {format_line(self.label, snap)}", self.out)
        if self.progress_file is not None:
            write_progress(self.progress_file, snap)


def write_progress(path: Path, snap: Snapshot) -> None:
    """For waiters; best effort (a waiter's line is a nicety, not a contract)."""
    from webhook.download.volume.checked_io import write_file_atomic

    try:
        write_file_atomic(path, json.dumps({**asdict(snap), "time": time.time()}).encode(), durable=False)
    except OSError:
        pass


def read_progress(path: Path) -> Snapshot | None:
    try:
        raw = json.loads(path.read_bytes())
        raw.pop("time", None)
        return Snapshot(**raw)
    except (OSError, ValueError, TypeError):
        return None


def format_duration(seconds: float) -> str:
    """`45s`, `3m05s`, `2h07m`."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
