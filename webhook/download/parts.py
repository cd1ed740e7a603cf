"""How a large file is cut into ranged parts, and the journal that makes a
parted download resumable after a kill -9.

The journal sits beside the `.incomplete` file (`<name>.incomplete.parts`):
the file's size, the part size, the validator (ETag) the bytes came with,
and for each part how many bytes from its start are on disk. It is rewritten
atomically a few times a second, each time after an fdatasync of the data,
so it never claims bytes that a crash of the node could lose. A journal that
does not match the file (size, part size, a missing validator on an origin
whose content can change) is discarded and the file starts over: nothing of
another version of the object is ever spliced in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from webhook.download.fsutil import write_file_atomic

MiB = 1 << 20
PARTS_ABOVE = 64 * MiB   # smaller files go over one stream (a part's request costs a round trip)
MIN_PART = 16 * MiB
MAX_PART = 64 * MiB
JOURNAL_VERSION = 1


def part_size_for(size: int) -> int:
    """16-64 MiB, about 1/32 of the file: enough parts that every connection
    has work on one file until its end (the last parts are the tail that
    limits the speed), few enough that a request's latency is paid once per
    tens of MiB. Whole MiB. It depends on the size only, so that a resume
    with another --jobs keeps the journal."""
    want = (size // 32 // MiB) * MiB
    return max(MIN_PART, min(MAX_PART, want))


def split(size: int, part: int) -> list[tuple[int, int]]:
    """[(start, end)] with `end` exclusive, covering [0, size)."""
    return [(start, min(size, start + part)) for start in range(0, size, part)]


def journal_path(incomplete: Path) -> Path:
    return incomplete.with_name(incomplete.name + ".parts")


@dataclass
class Journal:
    size: int
    part_size: int
    validator: str | None
    filled: list[int]  # bytes on disk from each part's start

    def to_json(self) -> bytes:
        return json.dumps({"version": JOURNAL_VERSION, "size": self.size, "part_size": self.part_size,
                           "validator": self.validator, "filled": self.filled}).encode()

    @staticmethod
    def load(path: Path, size: int, need_validator: bool) -> "Journal | None":
        """The journal if it describes a file of this size, else None."""
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        try:
            j = Journal(int(raw["size"]), int(raw["part_size"]), raw.get("validator"),
                        [int(x) for x in raw["filled"]])
        except (KeyError, TypeError, ValueError):
            return None
        if raw.get("version") != JOURNAL_VERSION or j.size != size or not MiB <= j.part_size <= MAX_PART:
            return None
        parts = split(size, j.part_size)
        if len(j.filled) != len(parts):
            return None
        if need_validator and not j.validator:
            return None  # we could not tell a changed object from the one we have half of
        if any(not 0 <= n <= end - start for n, (start, end) in zip(j.filled, parts)):
            return None
        return j

    def save(self, path: Path) -> None:
        write_file_atomic(path, self.to_json(), durable=True)
