"""Archives: which kinds there are, what volume each needs, and unpacking
them into the partial directory.

A tar archive (plain, gzip, bzip2 or xz) is unpacked as it streams in
(archive/tar_stream.py feeds `unpack_tar_stream`), or from the volume when
there is room to keep it (`unpack_tar_file`). A zip archive keeps its
directory at the end, so it must be whole on disk before it can be read:
it is downloaded, unpacked beside itself, then deleted, and the volume
needs room for both at once (`volume_size_needed`).

Both go through extract.py, member by member: the same rules on every
Python, whatever tarfile's filters would say (they are not used).
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator
from urllib.parse import unquote, urlsplit

from webhook.download.archive.budget import Budget
from webhook.download.archive.extract import Extractor
from webhook.download.archive.names import UnsafeArchive
from webhook.download.errors import DownloadError
from webhook.download.remote import SCRATCH
from webhook.download.uri import TAR_SUFFIXES, ZIP_SUFFIXES, archive_suffix, parse_source

__all__ = ["UnsafeArchive", "Budget", "is_streamed", "volume_size_needed", "unpack_tar_stream", "unpack_tar_file",
           "unpack_zip", "clear_except_scratch"]

CHUNK = 1 << 20
NO_BUDGET = Budget(None, "")


def is_streamed(suffix: str | None) -> bool:
    """A tar archive can be unpacked as it arrives; a zip is kept until unpacked."""
    return suffix in TAR_SUFFIXES


def archive_of(source: str) -> str | None:
    """The archive kind (`.tar.gz`, `.zip`) an http(s) SOURCE is unpacked as, or None."""
    spec = parse_source(source)
    return archive_suffix(unquote(urlsplit(spec.url).path)) if spec.scheme == "http" else None


def volume_size_needed(model_size: int, source: str) -> int:
    """Bytes a volume needs for a model of MODEL_SIZE (the policy's `size`:
    the unpacked model) from SOURCE. A zip is on the volume with its
    contents while it is unpacked, and is at most about as large as they
    are (it stores them, compressed or not): twice the size. Everything
    else, a streamed tar included, needs the model's size."""
    if archive_of(source) in ZIP_SUFFIXES:
        return 2 * model_size
    return model_size


def keeps_archive(suffix: str, archive_size: int | None, model_size: int | None, partial: Path) -> bool:
    """Whether the archive is fetched whole onto the volume (resumable, in
    parts, verified) before it is unpacked: always for a zip; for a tar when
    its size and the model's are known and the volume has room for both
    beside what this download already holds. Otherwise a tar streams."""
    if suffix in ZIP_SUFFIXES:
        return True
    if archive_size is None or model_size is None:
        return False
    from webhook.download.volume.space import VolumeSpace, disk_usage

    return VolumeSpace.of(partial).free + disk_usage(partial) >= archive_size + model_size


def streaming_note(suffix: str) -> str:
    """What a kill costs a streamed tar (docs/downloader.md, Archives)."""
    if suffix == ".tar":
        return "not kept on the volume (no room beside its contents): a killed run resumes where its bytes end"
    return "no room on the volume to keep it beside its contents: a killed run starts a compressed archive over"


def unpack_kept(suffix: str, archive: Path, target: Path, budget: Budget) -> None:
    """Unpacks an archive fetched whole into the scratch folder."""
    if suffix in ZIP_SUFFIXES:
        unpack_zip(archive, target, budget)
    else:
        unpack_tar_file(archive, target, budget)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    return iter(lambda: f.read(CHUNK), b"")


def tar_member(tf: tarfile.TarFile, m: tarfile.TarInfo, ex: Extractor,
               progress: Callable[[int], None] | None = None) -> None:
    """Unpacks the member M of TF, which is the member TF just read."""
    if m.isdir():
        ex.directory(m.name, m.mode)
    elif m.isreg():  # sparse and contiguous members included
        f = tf.extractfile(m)
        assert f is not None
        ex.file(m.name, m.size, _chunks(f), m.mode, m.mtime, sparse=m.sparse is not None, progress=progress)
    elif m.issym():
        ex.symlink(m.name, m.linkname)
    elif m.islnk():
        ex.hardlink(m.name, m.linkname)
    elif m.ischr() or m.isblk() or m.isfifo():
        raise UnsafeArchive(f"{m.name}: a device or fifo")
    else:
        raise UnsafeArchive(f"{m.name}: a member of unknown type {m.type!r}")


def unpack_tar_stream(fileobj: BinaryIO, target: Path, budget: Budget = NO_BUDGET) -> None:
    """Reads a tar stream (any compression tarfile knows) from FILEOBJ and
    writes its members under TARGET, one at a time, judging each first.
    Reads up to the tar end-of-archive blocks, not to the end of FILEOBJ."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tf, Extractor(target, budget) as ex:
            for member in tf:
                tar_member(tf, member, ex)
            ex.finish()
    except (tarfile.TarError, EOFError) as err:
        raise DownloadError(f"the archive is damaged or not a tar file: {err}") from None


def unpack_tar_file(archive: Path, target: Path, budget: Budget = NO_BUDGET) -> None:
    """Unpacks a whole tar file on disk (kept in the scratch folder, out of
    every member's reach) into TARGET."""
    clear_except_scratch(target)
    with open(archive, "rb") as f:
        unpack_tar_stream(f, target, budget)


def clear_except_scratch(target: Path) -> None:
    """An interrupted or refused unpack leaves nothing behind."""
    for entry in target.iterdir():
        if entry.name == SCRATCH:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def unpack_zip(archive: Path, target: Path, budget: Budget = NO_BUDGET) -> None:
    """Unpacks a whole zip file on disk into TARGET. Symlinks stored by
    Unix zip tools become files holding the link's text, as zipfile reads them."""
    clear_except_scratch(target)
    try:
        with zipfile.ZipFile(archive) as zf, Extractor(target, budget) as ex:
            for info in zf.infolist():
                mode = (info.external_attr >> 16) & 0o7777
                if info.is_dir():
                    ex.directory(info.filename, mode or 0o755)
                    continue
                with zf.open(info) as src:
                    ex.file(info.filename, info.file_size, _chunks(src), mode or 0o644, None)
            ex.finish()
    except (zipfile.BadZipFile, EOFError) as err:
        raise DownloadError(f"the archive is damaged or not a {archive.suffix} file: {err}") from None
