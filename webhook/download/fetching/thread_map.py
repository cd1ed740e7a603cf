"""`fn` over items on a few daemon threads, for the metadata calls of a
plan (one HEAD per S3 object). Daemon threads, as in scheduler.py: after a
failure or a SIGTERM, a thread blocked in a request must not hold up the exit."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """[fn(x) for x in items], `workers` at a time; the first error raises."""
    if len(items) <= 1 or workers <= 1:
        return [fn(x) for x in items]
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(items)):
        todo.put(i)
    done: queue.Queue[tuple[int, R | None, BaseException | None]] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, fn(items[i]), None))
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                done.put((i, None, err))

    for n in range(min(workers, len(items))):
        threading.Thread(target=work, name=f"model-cache-plan-{n}", daemon=True).start()
    results: list[R | None] = [None] * len(items)
    try:
        for _ in items:
            i, result, err = done.get()
            if err is not None:
                raise err
            results[i] = result
    finally:
        stop.set()
    return results  # type: ignore[return-value]
