"""Unpacks a downloaded .tar, .tar.gz/.tgz or .zip into the partial directory,
streaming (tarfile and zipfile read members one at a time), refusing members
that would land outside it."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from webhook.download.errors import DownloadError
from webhook.download.remote import SCRATCH


def _clear_except_scratch(target: Path) -> None:
    """An interrupted unpack is redone from scratch."""
    for entry in target.iterdir():
        if entry.name == SCRATCH:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def unpack(archive: Path, target: Path) -> None:
    _clear_except_scratch(target)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            _unzip(archive, target)
        else:
            with tarfile.open(archive, "r:*") as tf:
                # The "data" filter refuses absolute paths, '..', devices and
                # links that point outside the target.
                tf.extractall(target, filter="data")
    except tarfile.FilterError as err:
        raise DownloadError(f"the archive has an unsafe member, refused: {err}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
        raise DownloadError(f"the archive is damaged or not a {archive.suffix} file: {err}") from None


def _unzip(archive: Path, target: Path) -> None:
    root = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            dest = (target / info.filename).resolve()
            if not str(dest).startswith(str(root) + os.sep) and dest != root:
                raise DownloadError(f"the archive has an unsafe member, refused: {info.filename}")
            if info.filename.split("/")[0] == SCRATCH:
                raise DownloadError(f"the archive has a member in the reserved {SCRATCH}/: {info.filename}")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
