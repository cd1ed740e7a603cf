"""Member names, tar's and zip's alike, as the tuple of components they
name under the model's directory, or a refusal. Pure."""

from __future__ import annotations

from webhook.download.errors import DownloadError
from webhook.download.remote import SCRATCH

# Linux's PATH_MAX, NUL included: no model file needs a longer name, and
# everything that later walks the tree by path (publish, gc) would fail on one.
MAX_PATH = 4095
MAX_NAME = 255  # one component (NAME_MAX)


class UnsafeArchive(DownloadError):
    """A member that would land outside the model's directory, in the
    reserved folder, through a link, or that is a device."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"the archive has an unsafe member, refused: {problem}")
        self.problem = problem


Parts = tuple[str, ...]


def member_parts(name: str) -> Parts:
    """NAME as components under the model's directory: `.` and empty
    components dropped (`./a//b/` is `a/b`). Refuses what could leave it or
    reach the reserved folder, whatever comes before it in the name."""
    if "\0" in name:
        raise UnsafeArchive(f"{name!r}: a NUL byte in the name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"{name}: absolute path")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise UnsafeArchive(f"{name[:60]}...: a name longer than {MAX_PATH} bytes")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"{name}: '..' in the path")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME for p in parts):
        raise UnsafeArchive(f"{name[:60]}...: a component longer than {MAX_NAME} bytes")
    if parts and parts[0] == SCRATCH:
        raise UnsafeArchive(f"{name}: in the reserved {SCRATCH}/")
    return parts


def shown(parts: Parts) -> str:
    return "/".join(parts) or "."
