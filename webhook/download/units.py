"""Pure helpers to read and print sizes and durations."""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtTpPeE]?)(i?)[bB]?\s*$")
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def parse_size(text: str) -> int:
    """`50Gi`, `50G`, `1.5TiB`, `123` (bytes) -> bytes. Kubernetes-style: `Gi` is
    1024**3, `G` is 1000**3. Raises ValueError on anything else."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 500Gi, 200G or a number of bytes)")
    number, unit, binary = m.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _POWERS[unit.lower()])


def format_bytes(n: float) -> str:
    """Binary units, 3 significant digits: `1.50 GiB`, `512 B`."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.2f} {unit}" if n < 10 else f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """`45s`, `3m05s`, `2h07m`."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
