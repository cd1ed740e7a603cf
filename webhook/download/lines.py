"""The downloader's output: one whole line at a time. Retry lines, progress
lines and the final summary come from several threads; print() writes the
text and the newline separately, so they would interleave without one lock."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

_OUT_LOCK = threading.Lock()
BAR: Any = None  # the terminal's live progress bar while one is shown (progress.Bar)


def emit(line: str, out: TextIO | None = None) -> None:
    """Prints `line` and a newline under the one output lock, above the
    terminal's progress bar when there is one."""
    stream = out if out is not None else sys.stdout
    with _OUT_LOCK:
        bar = BAR
        if bar is not None:
            bar.clear()
        stream.write(line + "\n")
        stream.flush()
        if bar is not None:
            bar.refresh()
