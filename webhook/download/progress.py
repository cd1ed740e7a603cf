"""Progress: counters the fetchers add to, a pure line formatter, and the
ticker thread that refreshes the lock's heartbeat, prints a line every
progress interval (the two periods independent of each other), publishes the
numbers for waiters in `<rev>.progress`, and, when stderr is a terminal,
keeps tqdm's live bar there, as `hf download` does. In a container (no
terminal) the lines are all there is, unchanged."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TextIO

from webhook.download import lines
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
    """`llama/main: 1.2Gi / 16Gi (7.5%), 3/12 files, 81.3Mi/s, ETA 2m53s`: one
    unit family (the binary one of policies' sizes) for amounts and rate."""
    parts = [f"{label}: {format_bytes(s.done)}"]
    if s.total:
        pct = 100.0 * s.done / s.total if s.total else 100.0
        parts[0] += f" / {format_bytes(s.total)} ({pct:.1f}%)"
    if s.files_total > 1:
        parts.append(f"{s.files_done}/{s.files_total} files")
    parts.append(f"{format_bytes(s.rate)}/s")
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


BAR_REFRESH = 0.2  # seconds between redraws of the terminal bar


class Ticker(threading.Thread):
    """Runs `beat` every `heartbeat` seconds and prints progress every `interval`,
    each on its own schedule. An exception from `beat` (a lost lock) is kept in
    `.error` and stops it. BAR: the terminal's live bar (terminal_bar), or None."""

    def __init__(self, label: str, progress: Progress, beat: Callable[[], None], heartbeat: float,
                 interval: float, progress_file: Path | None, out: TextIO = sys.stdout,
                 bar: "Bar | None" = None) -> None:
        super().__init__(name="model-cache-ticker", daemon=True)
        self.label, self.progress, self.beat = label, progress, beat
        self.heartbeat, self.interval = heartbeat, interval
        self.progress_file = progress_file
        self.out = out
        self.bar = bar
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)
        if self.bar is not None:
            self.bar.close(self.progress.snapshot())

    def run(self) -> None:
        now = time.monotonic()
        next_beat, next_print = now + self.heartbeat, now + self.interval
        while True:
            now = time.monotonic()
            due = min(next_beat, next_print) - now
            if self.bar is not None:
                due = min(due, BAR_REFRESH)
            if self._stop_event.wait(max(due, 0.0)):
                return
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.heartbeat
                try:
                    self.beat()
                except OSError as err:
                    # A hiccup of the shared file system: keep downloading; if it
                    # lasts, waiters take over and our next beat sees LockLost.
                    emit(f"model-cache: warning: lock heartbeat failed: {err}", self.out)
                except BaseException as err:  # noqa: BLE001 - LockLost, handed to the main thread
                    self.error = err
                    return
            if now >= next_print:
                next_print = now + self.interval
                self.print_now()
            elif self.bar is not None:
                self.bar.show(self.progress.snapshot())

    def print_now(self) -> None:
        snap = self.progress.snapshot()
        if self.bar is not None:
            self.bar.show(snap)  # the bar says it on the terminal; the file still gets it for waiters
        else:
            emit(f"model-cache: {format_line(self.label, snap)}", self.out)
        if self.progress_file is not None:
            write_progress(self.progress_file, snap)


class Bar:
    """tqdm's bar on a terminal: bytes in binary units, its own rate and ETA.
    Lines that other threads print go above it (lines.emit clears it first)."""

    def __init__(self, label: str, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=label, file=stream, unit="B", unit_scale=True, unit_divisor=1024, total=None,
                         dynamic_ncols=True, mininterval=BAR_REFRESH, leave=True)
        lines.BAR = self._bar

    def show(self, snap: Snapshot) -> None:
        if snap.total and self._bar.total != snap.total:
            self._bar.total = snap.total
        self._bar.update(snap.done - self._bar.n)
        if snap.files_total > 1:
            self._bar.set_postfix_str(f"{snap.files_done}/{snap.files_total} files", refresh=False)

    def close(self, snap: Snapshot) -> None:
        self.show(snap)
        lines.BAR = None
        self._bar.close()


def terminal_bar(label: str, stream: TextIO = sys.stderr) -> Bar | None:
    """A live bar when STREAM is a terminal (someone watching), else None:
    in a container the progress lines are the log."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):  # closed or not a real file
        return None
    return Bar(label, stream)


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
