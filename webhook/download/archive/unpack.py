"""Archives: which kinds there are, what volume each needs, and unpacking.

A tar archive (plain, gzip, bzip2 or xz) is unpacked as it streams in
(archive/tar_stream.py feeds `unpack_tar_stream`): the archive itself is never on the
volume, so the volume needs room for the contents only. A zip archive keeps
its directory at the end, so it must be whole on disk before it can be read:
it is downloaded, unpacked beside itself, then deleted, and the volume needs
room for both at once (`volume_size_needed`).

Members are checked before they are written: no absolute path, no `..`, no
link that points outside the target, no device, nothing in our scratch
directory. Python's own "data" filter (3.11.4 and later, 3.12) applies on
top where it exists; the checks here are what holds on 3.11.0-3.11.3.
"""

from __future__ import annotations

import copy
import os
import posixpath
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from webhook.download.errors import DownloadError
from webhook.download.remote import SCRATCH
from webhook.download.uri import TAR_SUFFIXES, ZIP_SUFFIXES, archive_suffix, parse_source

# Python's tar filters exist from 3.11.4 and 3.12 on (PEP 706).
DATA_FILTER = getattr(tarfile, "data_filter", None)
_FILTER_ERRORS: tuple[type[BaseException], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ())  # type: ignore[attr-defined]


class UnsafeArchive(DownloadError):
    """A member that would land outside the model's directory, or a device."""


def is_streamed(suffix: str | None) -> bool:
    """A tar archive is unpacked as it arrives; a zip is kept until unpacked."""
    return suffix in TAR_SUFFIXES


def volume_size_needed(model_size: int, source: str) -> int:
    """Bytes a volume needs for a model of MODEL_SIZE (the policy's `size`:
    the unpacked model) from SOURCE. A zip is on the volume with its
    contents while it is unpacked, and is at most about as large as they
    are (it stores them, compressed or not): twice the size. Everything
    else, a streamed tar included, needs the model's size."""
    spec = parse_source(source)
    if spec.scheme == "http" and archive_suffix(unquote(urlsplit(spec.url).path)) in ZIP_SUFFIXES:
        return 2 * model_size
    return model_size


# --- member checks ------------------------------------------------------------------


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be unpacked, or None. Pure: paths only."""
    name = member.name
    if name.startswith("/") or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return f"{name}: absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return f"{name}: '..' in the path"
    if parts and parts[0] == SCRATCH:
        return f"{name}: in the reserved {SCRATCH}/"
    if member.ischr() or member.isblk() or member.isfifo():
        return f"{name}: a device or fifo"
    if member.issym():
        if posixpath.isabs(member.linkname):
            return f"{name}: a symlink to the absolute path {member.linkname}"
        where = posixpath.normpath(posixpath.join(posixpath.dirname("/".join(parts)), member.linkname))
        if where == ".." or where.startswith("../"):
            return f"{name}: a symlink to {member.linkname}, outside the model's directory"
    if member.islnk():
        where = posixpath.normpath(member.linkname)
        if posixpath.isabs(member.linkname) or where == ".." or where.startswith("../"):
            return f"{name}: a hard link to {member.linkname}, outside the model's directory"
    return None


def _tamed(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The member as we write it: our owner, no setuid/setgid/sticky bit,
    no write bit for group and others (what the data filter does too)."""
    m = copy.copy(member)
    m.mode &= 0o755
    m.uid, m.gid, m.uname, m.gname = os.geteuid(), os.getegid(), "", ""
    return m


def unpack_tar_stream(fileobj: BinaryIO, target: Path) -> None:
    """Reads a tar stream (any compression tarfile knows) from FILEOBJ and
    writes its members under TARGET, one at a time, checking each first.
    Reads up to the tar end-of-archive blocks, not to the end of FILEOBJ."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tf:
            for member in tf:
                problem = member_problem(member)
                if problem:
                    raise UnsafeArchive(f"the archive has an unsafe member, refused: {problem}")
                if DATA_FILTER is not None:
                    tf.extract(_tamed(member), target, filter="data")
                else:
                    tf.extract(_tamed(member), target)
    except _FILTER_ERRORS as err:
        raise UnsafeArchive(f"the archive has an unsafe member, refused: {err}") from None
    except (tarfile.TarError, EOFError) as err:
        raise DownloadError(f"the archive is damaged or not a tar file: {err}") from None


def clear_except_scratch(target: Path) -> None:
    """An interrupted unpack is redone from the start."""
    for entry in target.iterdir():
        if entry.name == SCRATCH:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def unpack_zip(archive: Path, target: Path) -> None:
    """Unpacks a whole zip file on disk into TARGET."""
    clear_except_scratch(target)
    try:
        _unzip(archive, target)
    except (zipfile.BadZipFile, EOFError) as err:
        raise DownloadError(f"the archive is damaged or not a {archive.suffix} file: {err}") from None


def _unzip(archive: Path, target: Path) -> None:
    root = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            dest = (target / info.filename).resolve()
            if not str(dest).startswith(str(root) + os.sep) and dest != root:
                raise UnsafeArchive(f"the archive has an unsafe member, refused: {info.filename}")
            if info.filename.split("/")[0] == SCRATCH:
                raise UnsafeArchive(f"the archive has a member in the reserved {SCRATCH}/: {info.filename}")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
