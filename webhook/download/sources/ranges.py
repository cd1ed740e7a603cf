"""The rule every ranged read obeys, for http(s), hf and s3 alike: the
response's Content-Range must start where we asked. Bytes from another
offset are an error (retried), never written at the wrong place."""

from __future__ import annotations

import re

from webhook.download.errors import TransientError

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def content_range_start_total(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, the whole object's size or None for `*`) of a Content-Range."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def checked_total(value: str | None, offset: int, where: str) -> int | None:
    """The whole object's size a ranged response states; raises
    TransientError when its Content-Range is missing, unreadable or starts
    anywhere but `offset`."""
    cr = content_range_start_total(value)
    if cr is None or cr[0] != offset:
        raise TransientError(f"{where}: Content-Range {value!r} does not start at {offset}")
    return cr[1]
