"""Room on the volume: what it holds, what a download needs, and the message
when it runs out. The rule: if what this download needs is more than the
volume could ever give it (the space used by others counted as freeable),
no restart can succeed, and the error says so with its own exit code."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from webhook.download.errors import DiskFullError, WontFitError
from webhook.quantity import describe as format_bytes

POLICY_FIELD = "size"  # the model's field in the policy that sizes the volume (emptyDir sizeLimit, PVC check)


def slack(capacity: int) -> int:
    """Space used on a volume by others that still counts as "nothing": file
    system metadata, our own lock and progress files. 1% within 64Ki-16Mi, so
    that "never" is said only where freeing everything else would win at
    most that little; a fresh ext4's journal (more than 16Mi) makes it say
    "free space" instead, the harmless side."""
    return max(64 << 10, min(16 << 20, capacity // 100))


@dataclass(frozen=True)
class VolumeSpace:
    capacity: int  # bytes an unprivileged writer could have if the volume were empty of files
    free: int      # bytes it may still use now
    used: int      # bytes in use, by everyone

    @classmethod
    def of(cls, path: Path) -> "VolumeSpace":
        st = os.statvfs(path)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        free = st.f_bavail * st.f_frsize
        return cls(capacity=used + free, free=free, used=used)


def disk_usage(path: Path) -> int:
    """Bytes the blocks under PATH take (a preallocated file counts whole)."""
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def _fix() -> str:
    return f"raise the model's `{POLICY_FIELD}` in the policy (it sizes the volume) or give the volume more room"


def not_enough_before_start(where: Path, need: int, total: int, space: VolumeSpace) -> DiskFullError | None:
    """The check before any byte is fetched: NEED more bytes of a model of TOTAL."""
    if total > space.capacity:
        return WontFitError(
            f"the model is {format_bytes(total, round_up=True)} and the volume of {where} has "
            f"{format_bytes(space.capacity)} in all: it can never fit, restarts will not help; {_fix()}")
    if need > space.free:
        return DiskFullError(
            f"not enough space on the volume of {where}: the model needs {format_bytes(need, round_up=True)} more, "
            f"{format_bytes(space.free)} free of {format_bytes(space.capacity)}; free space (model-cache gc) or {_fix()}")
    return None


def ran_out(where: Path, partial: Path, space: VolumeSpace, *, model_size: int | None,
            archive: str | None, archive_size: int | None, archive_kept: bool) -> DiskFullError:
    """ENOSPC while downloading or unpacking into PARTIAL (ARCHIVE_KEPT: the
    archive was fetched whole onto the volume, not streamed)."""
    ours = disk_usage(partial)
    never = space.used - ours <= slack(space.capacity)  # nothing but this download on a full volume
    if archive is not None:
        kept = "kept beside its contents while it is unpacked" if archive_kept else \
            "streamed: only its contents are kept"
        size = format_bytes(archive_size, round_up=True) if archive_size is not None else "unknown-size"
        what = (f"unpacking the {size} {archive} archive ({kept}) filled the volume of {where}: "
                f"{format_bytes(ours)} written, the volume has {format_bytes(space.capacity)} in all")
    else:
        need = f"the model is {format_bytes(model_size, round_up=True)}" if model_size is not None else \
            "the model's size is unknown"
        what = (f"no space left on the volume of {where}: {need}, {format_bytes(ours)} written, the volume has "
                f"{format_bytes(space.capacity)} in all, {format_bytes(space.free)} free")
    if never:
        return WontFitError(f"{what}: the model can never fit on it, restarts will not help; {_fix()}")
    later = "the next start streams it again" if archive is not None and not archive_kept else \
        f"the partial download is kept in {partial} and resumes on the next start"
    return DiskFullError(f"{what}; {later}: free space (model-cache gc) or {_fix()}")
