"""Issue 25's attacks, each on a real file system, under the project's
Python and (tests/download/test_archive.py runs this file) under Debian's
3.11.2, which has no tarfile filters: whatever an archive holds, nothing
outside the model's partial directory changes (canaries at every level
above it, a second published model beside it), the reserved folder is out
of reach, and a bomb stops at its budget. Standard library only."""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.download.archive_kit import (OneWayStream, Volume, member, path_max_tar, sparse_tar, tar_of,
                                        zip_of)
from webhook.download.archive.unpack import Budget, UnsafeArchive, unpack_tar_stream, unpack_zip
from webhook.download.errors import ArchiveTooLarge, DownloadError

MiB = 1 << 20
SYM, LNK, DIR, REG = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.REGTYPE


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    return Volume.make(tmp_path)


def unpack_tar(data: bytes, target: Path, size: int | None = None) -> None:
    unpack_tar_stream(OneWayStream(data), target, Budget(size, "m"))


def unpack_zip_bytes(data: bytes, target: Path, size: int | None = None) -> None:
    archive = target / ".model-cache-tmp" / "download" / "archive.zip"  # where the downloader keeps it
    archive.write_bytes(data)
    unpack_zip(archive, target, Budget(size, "m"))


def _chain() -> list[tuple[tarfile.TarInfo, bytes]]:
    """a -> . ; b -> a/.. (the model's parent) ; c -> b/.. (the volume)."""
    return [(member("a", SYM, "."), b""), (member("b", SYM, "a/.."), b""), (member("c", SYM, "b/.."), b"")]


ATTACKS = {
    # Symlink chains: each link's text alone looks inside.
    "file through a chain": _chain() + [(member("c/other/main/weights.bin"), b"POISONED")],
    "link under a link": [(member("s", SYM, "."), b""), (member("s/e", SYM, ".."), b""),
                          (member("s/e/canary"), b"POISONED")],
    "hard link through a chain, then a duplicate": _chain() + [
        (member("h", LNK, "c/other/main/weights.bin"), b""), (member("h", mode=0o777), b"POISONED")],
    "duplicate through a chain": _chain() + [(member("c/canary"), b"first"), (member("c/canary"), b"POISONED")],
    # The scratch folder through a link the archive made.
    "scratch through a link": [(member("x", SYM, ".model-cache-tmp"), b""),
                               (member("x/plan-key"), b"POISONED")],
    "scratch through a link to ./": [(member("y", SYM, "./.model-cache-tmp/"), b"")],
    # A later link turns an earlier one's target outside.
    "a link made outside afterwards": [(member("l", SYM, "x/.."), b""), (member("x", SYM, "."), b"")],
}


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("compression", ["w", "w:gz"])
def test_links_made_by_the_archive_are_never_a_way_out(volume: Volume, name: str, compression: str) -> None:
    with pytest.raises(UnsafeArchive):
        unpack_tar(tar_of(ATTACKS[name], compression), volume.target)
    assert volume.unchanged(), volume.changes()
    assert (volume.target / ".model-cache-tmp" / "plan-key").read_text() == "http|x|"


def test_a_path_longer_than_path_max_through_archive_links(volume: Volume) -> None:
    with pytest.raises(UnsafeArchive, match="passes through the symlink a the archive made"):
        unpack_tar(path_max_tar(), volume.target)
    assert volume.unchanged(), volume.changes()


@pytest.mark.parametrize("name", [
    "./.model-cache-tmp/download/archive.zip",   # the zip being read
    ".//.model-cache-tmp/plan-key",
    "a/../.model-cache-tmp/plan-key",
    ".model-cache-tmp/../.model-cache-tmp/x",
])
def test_a_zip_never_reaches_the_scratch_folder(volume: Volume, name: str) -> None:
    data = zip_of([("ok.txt", b"fine"), (name, b"POISONED")])
    with pytest.raises(UnsafeArchive):
        unpack_zip_bytes(data, volume.target)
    assert (volume.target / ".model-cache-tmp" / "download" / "archive.zip").read_bytes() == data
    assert (volume.target / ".model-cache-tmp" / "plan-key").read_text() == "http|x|"
    assert volume.unchanged(), volume.changes()


@pytest.mark.parametrize("name", ["./.model-cache-tmp/plan-key", "x/../.model-cache-tmp/plan-key"])
def test_a_tar_never_reaches_the_scratch_folder(volume: Volume, name: str) -> None:
    with pytest.raises(UnsafeArchive):
        unpack_tar(tar_of([(member(name), b"POISONED")]), volume.target)
    assert (volume.target / ".model-cache-tmp" / "plan-key").read_text() == "http|x|"


def test_a_tar_bomb_stops_at_its_budget(volume: Volume) -> None:
    data = tar_of([(member("a.bin"), bytes(MiB)), (member("zeros.bin"), bytes(64 * MiB))], "w:gz")
    assert len(data) < MiB // 4
    with pytest.raises(ArchiveTooLarge) as err:
        unpack_tar(data, volume.target, size=2 * MiB)
    message = str(err.value)
    assert "model m" in message and "2.1Mi" in message and "`size` 2Mi" in message and "zeros.bin" in message
    assert not (volume.target / "zeros.bin").exists()  # refused before its first byte
    assert volume.unchanged(), volume.changes()


def test_a_zip_bomb_stops_at_its_budget(volume: Volume) -> None:
    data = zip_of([("zeros.bin", bytes(64 * MiB))], zipfile.ZIP_DEFLATED)
    with pytest.raises(ArchiveTooLarge, match="model m"):
        unpack_zip_bytes(data, volume.target, size=MiB)
    assert not (volume.target / "zeros.bin").exists()


def test_a_sparse_member_counts_whole(volume: Volume) -> None:
    data = sparse_tar("big.bin", 1 << 40)
    assert len(data) < 16 << 10
    with pytest.raises(ArchiveTooLarge, match="1Ti"):
        unpack_tar(data, volume.target, size=64 * MiB)
    assert not (volume.target / "big.bin").exists()


def test_a_sparse_member_within_budget_stays_sparse(volume: Volume) -> None:
    unpack_tar(sparse_tar("big.bin", 32 * MiB), volume.target, size=64 * MiB)
    st = (volume.target / "big.bin").stat()
    assert st.st_size == 32 * MiB and st.st_blocks * 512 <= 2 * MiB  # the one chunk with data, not 32 of them
    with open(volume.target / "big.bin", "rb") as f:
        assert f.read(1024) == b"x" * 512 + bytes(512)


def test_modes_000_become_readable_and_searchable(volume: Volume) -> None:
    unpack_tar(tar_of([(member("locked", DIR, mode=0), b""), (member("locked/w.bin", mode=0), b"weights"),
                       (member("top.bin", mode=0o6777), b"top")]), volume.target)
    assert stat.S_IMODE((volume.target / "locked").stat().st_mode) == 0o755
    assert stat.S_IMODE((volume.target / "locked" / "w.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((volume.target / "top.bin").stat().st_mode) == 0o755
    assert (volume.target / "locked" / "w.bin").read_bytes() == b"weights"


def test_a_duplicate_replaces_a_link_and_never_writes_through_it(volume: Volume) -> None:
    unpack_tar(tar_of([(member("inner"), b"A"), (member("l", SYM, "inner"), b""), (member("l"), b"B"),
                       (member("f"), b"C"), (member("h", LNK, "f"), b""), (member("h"), b"D")]), volume.target)
    t = volume.target
    assert (t / "inner").read_bytes() == b"A" and not (t / "l").is_symlink() and (t / "l").read_bytes() == b"B"
    assert (t / "f").read_bytes() == b"C" and (t / "h").read_bytes() == b"D" and (t / "f").stat().st_nlink == 1


@pytest.mark.parametrize("members", [
    [(member("d", DIR), b""), (member("d"), b"file over a directory")],
    [(member("d", DIR), b""), (member("d", SYM, "."), b"")],
    [(member("f"), b""), (member("f", DIR), b"")],
    [(member("sub", DIR), b""), (member("d", SYM, "sub"), b""), (member("d/x"), b"through a link inside")],
])
def test_a_duplicate_never_turns_a_directory_into_a_way_through(volume: Volume, members: list) -> None:
    with pytest.raises(UnsafeArchive):
        unpack_tar(tar_of(members), volume.target)
    assert volume.unchanged(), volume.changes()


# What held before issue 25, and must keep holding.
HELD = [
    ("../x", REG, "", "'..' in the path"),
    ("/abs.txt", REG, "", "absolute path"),
    ("a/../../x", REG, "", "'..'"),
    ("out", SYM, "../../..", "outside the model's directory"),
    ("a/link", SYM, "../../etc", "outside the model's directory"),
    ("link", SYM, "/etc/passwd", "absolute path"),
    ("hard", LNK, "../other/main/weights.bin", "'..'"),
    ("hard", LNK, "/etc/passwd", "absolute path"),
    ("dev", tarfile.CHRTYPE, "", "device"),
    ("fifo", tarfile.FIFOTYPE, "", "fifo"),
    (".model-cache-tmp/x", REG, "", "reserved"),
    ("d" * 256, REG, "", "longer than 255"),
    ("/".join(["d" * 200] * 21), REG, "", "longer than 4095"),
]


@pytest.mark.parametrize("name,kind,link,why", HELD)
def test_what_held_still_holds(volume: Volume, name: str, kind: bytes, link: str, why: str) -> None:
    with pytest.raises(UnsafeArchive, match="unsafe member, refused") as err:
        unpack_tar(tar_of([(member(name, kind, link), b"nope")]), volume.target)
    assert why in str(err.value)
    assert volume.unchanged(), volume.changes()
    assert volume.left_in_target() == []


def test_a_zip_symlink_is_written_as_a_file(volume: Volume) -> None:
    info = zipfile.ZipInfo("weights.bin")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    buf_path = volume.target / ".model-cache-tmp" / "download" / "archive.zip"
    with zipfile.ZipFile(buf_path, "w") as z:
        z.writestr(info, "../../other/main/weights.bin")
    unpack_zip(buf_path, volume.target, Budget(None, "m"))
    p = volume.target / "weights.bin"
    assert not p.is_symlink() and p.read_bytes() == b"../../other/main/weights.bin"
    assert stat.S_IMODE(p.stat().st_mode) == 0o755
    assert volume.unchanged(), volume.changes()


def test_a_truncated_tar_is_damaged(volume: Volume) -> None:
    data = tar_of([(member("w.bin"), os.urandom(100_000))], "w:gz")
    with pytest.raises(DownloadError, match="damaged"):
        unpack_tar(data[: len(data) // 2], volume.target)
    assert volume.unchanged(), volume.changes()


def test_a_zip_member_of_mode_0600_is_readable_by_the_serving_containers(volume: Volume) -> None:
    """Python's writestr says 0600; the serving containers read the model under
    their own uid, so every file is readable and every directory searchable by all
    (a memory pod's server crash-looped on PermissionError on the real node)."""
    buf_path = volume.target / ".model-cache-tmp" / "download" / "archive.zip"
    with zipfile.ZipFile(buf_path, "w") as z:
        z.writestr("weights/model.safetensors", b"w")
        z.writestr(zipfile.ZipInfo("weights/"), b"")
    assert zipfile.ZipFile(buf_path).getinfo("weights/model.safetensors").external_attr >> 16 == 0o600
    unpack_zip(buf_path, volume.target, Budget(None, "m"))
    assert stat.S_IMODE((volume.target / "weights" / "model.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((volume.target / "weights").stat().st_mode) == 0o755
