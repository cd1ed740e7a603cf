"""How a large file is cut into ranged parts, and the journal that makes a
parted download resumable after a kill -9.

The journal sits beside the `.incomplete` file (`<name>.incomplete.parts`):
the file's size, its parts, the validator (ETag) the bytes came with, and
for each part how many bytes from its start are on disk. It is rewritten
atomically a few times a second, each time after an fdatasync of the data,
so it never claims bytes that a crash of the node could lose. A journal that
does not match the file (size, parts, a missing validator on an origin
whose content can change) is discarded and the file starts over: nothing of
another version of the object is ever spliced in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from webhook.download.volume.checked_io import write_file_atomic

MiB = 1 << 20
PARTS_ABOVE = 64 * MiB   # smaller files go over one stream (a part's request costs a round trip)
MIN_PART = 16 * MiB
MAX_PART = 64 * MiB
JOURNAL_VERSION = 2


def plan_parts(size: int, jobs: int) -> list[tuple[int, int]]:
    """[(start, end)], `end` exclusive, covering [0, size): guided
    self-scheduling. Each part is 1/(2 x jobs) of what is left, in whole MiB,
    within 16-64 MiB: large parts while there is much to do (a request's
    latency is paid once per tens of MiB), small ones at the end, so that
    when the last part is taken the other connections are not left idle
    behind one slow 64 MiB part (the tail that limits a parallel download)."""
    parts: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        want = ((size - pos) // (2 * max(1, jobs)) // MiB) * MiB
        step = max(MIN_PART, min(MAX_PART, want))
        end = min(size, pos + step)
        if size - end < MIN_PART // 2:
            end = size  # no sliver of a part at the very end
        parts.append((pos, end))
        pos = end
    return parts


def journal_path(incomplete: Path) -> Path:
    return incomplete.with_name(incomplete.name + ".parts")


@dataclass
class Journal:
    size: int
    parts: list[tuple[int, int]]
    validator: str | None
    filled: list[int]  # bytes on disk from each part's start

    def to_json(self) -> bytes:
        return json.dumps({"version": JOURNAL_VERSION, "size": self.size, "parts": self.parts,
                           "validator": self.validator, "filled": self.filled}).encode()

    @staticmethod
    def load(path: Path, size: int, need_validator: bool) -> "Journal | None":
        """The journal if it describes a file of this size, else None."""
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        try:
            j = Journal(int(raw["size"]), [(int(a), int(b)) for a, b in raw["parts"]], raw.get("validator"),
                        [int(x) for x in raw["filled"]])
        except (KeyError, TypeError, ValueError):
            return None
        if raw.get("version") != JOURNAL_VERSION or j.size != size or len(j.filled) != len(j.parts) or not j.parts:
            return None
        # The parts must tile [0, size) exactly, and no part may claim more than it holds.
        if j.parts[0][0] != 0 or j.parts[-1][1] != size or any(a[1] != b[0] for a, b in zip(j.parts, j.parts[1:])):
            return None
        if any(not 0 <= n <= end - start for n, (start, end) in zip(j.filled, j.parts)):
            return None
        if need_validator and not j.validator:
            return None  # we could not tell a changed object from the one we have half of
        return j

    def save(self, path: Path) -> None:
        write_file_atomic(path, self.to_json(), durable=True)
