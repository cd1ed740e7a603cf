"""The downloader's output: one whole line at a time. Retry lines, progress
lines and the final summary come from several threads; print() writes the
text and the newline separately, so they would interleave without one lock."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

_OUT_LOCK = threading.Lock()


def emit(line: str, out: TextIO | None = None) -> None:
    """Prints `line` and a newline under the one output lock."""
    stream = out if out is not None else sys.stdout
    with _OUT_LOCK:
        stream.write(line + "\n")
        stream.flush()
