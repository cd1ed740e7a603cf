"""A digest that did not match, remembered: after a file was fetched twice
and both times hashed to something other than what was expected, the next
start must not fetch it again while nothing that could change the outcome
has changed. Otherwise a wrong policy sha256 costs twice the model's size
from the origin on every restart of every replica, forever.

The record (`<rev>.digest-mismatch`, JSON, beside `<rev>.partial`) holds the
source, the file, the origin's validator of the bytes that were hashed (an
ETag, a Last-Modified, a commit), their size, the expected digest and where
it came from, and the computed one. It applies while the source, the
expected digest (the policy's sha256, or the origin's own) and the validator
are all the same; any change is a new attempt. A publish removes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from webhook.download.remote import RemoteFile

SUFFIX = ".digest-mismatch"


@dataclass(frozen=True)
class Mismatch:
    """What one file's two fetches ended in."""

    path: str
    algorithm: str
    expected: str
    expected_from: str          # Check.source: "policy", "Repr-Digest", "Hub LFS", ...
    computed: str | None
    size: int | None
    validator: str | None       # the origin's word that the bytes are unchanged; None: it gave none

    @classmethod
    def of(cls, f: RemoteFile, computed: str | None) -> "Mismatch":
        assert f.check is not None
        return cls(f.path, f.check.algorithm, f.check.value, f.check.source, computed, f.size, f.validator)


def record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + SUFFIX)


def where_expected(expected_from: str) -> str:
    """Where the expected digest came from, in words a user can act on."""
    if expected_from == "policy":
        return "the policy's sha256 (--sha256)"
    return f"the origin's {expected_from}"


def _fix(m: Mismatch) -> str:
    if m.expected_from == "policy":
        return (f"if the origin's file is the right one, set the model's sha256 in the policy to {m.computed}; "
                "otherwise fix the file on the origin")
    return f"the origin serves other bytes than its {m.expected_from} says: fix the file (or that value) on the origin"


def describe(m: Mismatch) -> str:
    """The one-line reason, the same on the run that fetched and on every
    run that refuses without fetching."""
    return (f"{m.path}: checksum is {m.computed}, expected {m.expected} (fetched twice), the expected {m.algorithm} "
            f"from {where_expected(m.expected_from)}; {_fix(m)}")


def _until(m: Mismatch) -> str:
    if m.validator is None:
        return ("the origin gives no ETag or Last-Modified, so a fix on the origin cannot be seen: "
                "change the policy's sha256, or delete the record")
    return f"until the policy's sha256 or the origin's file ({m.validator}) changes"


def remember(dest: Path, source: str, m: Mismatch) -> str:
    """Writes the record; returns what the message adds about it."""
    from webhook.download.volume.checked_io import write_file_atomic

    path = record_path(dest)
    body = {"source": source, **asdict(m), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        write_file_atomic(path, json.dumps(body, indent=1).encode())
    except OSError as err:  # the mismatch is the news; a volume error must not hide it
        return f"not recorded in {path} ({err.strerror}): a restart fetches it again"
    return f"recorded in {path}: restarts fail at once without fetching, {_until(m)}"


def recalled(dest: Path, source: str, files: list[RemoteFile]) -> tuple[Mismatch, str] | None:
    """The recorded mismatch that still applies to this listing, and when it
    was found; None when there is none or something it depends on changed."""
    try:
        body = json.loads(record_path(dest).read_bytes())
        at = str(body.pop("at", "?"))
        if body.pop("source", None) != source:
            return None
        m = Mismatch(**body)
    except (OSError, ValueError, TypeError):
        return None  # none, or unreadable: fetching again is the safe side
    for f in files:
        if f.path == m.path and f.check is not None and Mismatch.of(f, m.computed) == m:
            return m, at
    return None


def refusal(dest: Path, m: Mismatch, at: str) -> str:
    return (f"{describe(m)}; not fetched again: a run at {at} fetched these bytes twice ({record_path(dest)}); "
            f"{_until(m)}")


def forget(dest: Path) -> None:
    try:
        record_path(dest).unlink()
    except FileNotFoundError:
        pass
