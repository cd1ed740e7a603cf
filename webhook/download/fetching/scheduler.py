"""Runs the files of a download on `--jobs` shared connections, biggest
first. A large file becomes part tasks (ranged.py) queued ahead of the other
files, so every connection works on it until its last parts are taken, then
moves on; the rest go over one stream each (stream.py).

Daemon threads rather than a ThreadPoolExecutor: after a failure or a
SIGTERM a worker blocked in a socket read must not hold up the exit (the
executor joins its threads at interpreter shutdown).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Union

from webhook.download.errors import NetworkError
from webhook.download.fetching.stream import Fetcher
from webhook.download.fetching.ranged import PartedFile
from webhook.download.fetching.part_journal import PARTS_ABOVE, journal_path
from webhook.download.remote import FileRecord, RemoteFile
from webhook.download.fetching.transfer import Cancelled, Transfer

EXIT_GRACE = 2.0  # seconds the workers get to notice a cancel before the lock is released


@dataclass(frozen=True)
class FileTask:
    f: RemoteFile
    single: bool = False  # one stream even if large (a parted attempt had to start over)


@dataclass(frozen=True)
class PartTask:
    file: PartedFile
    index: int


Task = Union[FileTask, PartTask]


class Scheduler:
    def __init__(self, transfer: Transfer) -> None:
        self.t = transfer
        self.single = Fetcher(transfer)
        self.tasks: collections.deque[Task] = collections.deque()
        self.cv = threading.Condition()
        self.unfinished = 0
        self.results: queue.Queue[tuple[FileRecord | None, BaseException | None]] = queue.Queue()
        self.threads: list[threading.Thread] = []

    def run(self, files: list[RemoteFile], poll: Callable[[], None]) -> list[FileRecord]:
        """Fetches every file; `poll` runs on the calling thread between waits
        (signals, a lost lock) and may raise."""
        self.tasks.extend(FileTask(f) for f in sorted(files, key=lambda f: -(f.size or 0)))
        self.unfinished = len(files)
        self._start_workers()
        try:
            return self._collect(len(files), poll)
        except BaseException:
            self._stop_workers()
            raise

    # -- the queue ---------------------------------------------------------

    def submit_parts(self, pf: PartedFile, indices: list[int]) -> None:
        """Part tasks of a file go ahead of the other files."""
        with self.cv:
            self.tasks.extendleft(reversed([PartTask(pf, i) for i in indices]))
            self.cv.notify_all()

    def requeue(self, f: RemoteFile, single: bool) -> None:
        with self.cv:
            self.tasks.appendleft(FileTask(f, single))
            self.cv.notify_all()

    def _next_task(self) -> Task | None:
        """The next task, or None when there is nothing left to do or a cancel."""
        cancel = self.t.opts.cancel
        with self.cv:
            while not self.tasks and self.unfinished > 0 and not cancel.is_set():
                self.cv.wait(0.25)
            if cancel.is_set() or not self.tasks:
                return None
            return self.tasks.popleft()

    # -- one task ------------------------------------------------------------

    def _parted(self, f: RemoteFile) -> bool:
        """Fetch this file as parallel ranged parts? Only large files of known
        size from origins that take ranges; a single-stream partial left by an
        earlier run (no journal) is resumed as it is."""
        if not getattr(self.t.source, "ranged", False) or f.size is None or f.size < PARTS_ABOVE:
            return False
        inc = self.t.incomplete_path(f)
        if inc.exists() and not journal_path(inc).exists() and 0 < inc.stat().st_size < f.size:
            return False
        return True

    def _run(self, task: Task) -> FileRecord | None:
        """The file's record when this task completed it, else None."""
        if isinstance(task, PartTask):
            return task.file.run_part(task.index)
        f = task.f
        if task.single or not self._parted(f):
            return self.single.fetch(f)
        final = self.t.final_path(f)
        if final.is_file() and final.stat().st_size == f.size:
            return self.single.fetch(f)  # completed by an earlier run: no request
        inc = self.t.incomplete_path(f)
        inc.parent.mkdir(parents=True, exist_ok=True)
        pf = PartedFile(self.t, f, inc, self.submit_parts, self.requeue)
        if pf.remaining == 0:  # every part on disk already (killed before the rename)
            return pf.finish()
        return None

    # -- the workers -----------------------------------------------------------

    def _worker(self) -> None:
        while (task := self._next_task()) is not None:
            try:
                rec = self._run(task)
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                self.results.put((None, err))
                self.t.opts.cancel.set()
                with self.cv:
                    self.cv.notify_all()
                return
            if rec is not None:
                self.results.put((rec, None))
                with self.cv:
                    self.unfinished -= 1
                    self.cv.notify_all()

    def _start_workers(self) -> None:
        n = max(1, self.t.opts.jobs)
        self.threads = [threading.Thread(target=self._worker, name=f"model-cache-fetch-{i}", daemon=True)
                        for i in range(n)]
        for th in self.threads:
            th.start()

    def _collect(self, n: int, poll: Callable[[], None]) -> list[FileRecord]:
        cancel = self.t.opts.cancel
        records: list[FileRecord] = []
        while len(records) < n:
            try:
                rec, err = self.results.get(timeout=0.5)
            except queue.Empty:
                poll()
                if cancel.is_set() and not any(th.is_alive() for th in self.threads) and self.results.empty():
                    raise NetworkError("download cancelled")
                continue
            if err is not None and not isinstance(err, Cancelled):
                raise err
            if rec is not None:
                records.append(rec)
        return records

    def _stop_workers(self) -> None:
        """Cancel, and give the workers a moment to notice (they check
        between chunks) so that none still writes after our lock is released."""
        self.t.opts.cancel.set()
        deadline = time.monotonic() + EXIT_GRACE
        for th in self.threads:
            th.join(timeout=max(0.0, deadline - time.monotonic()))
