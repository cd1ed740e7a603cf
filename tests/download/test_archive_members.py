"""The archive checks that must hold on every Python the project claims,
3.11.0-3.11.3 included (no tarfile filters there). Only the standard library
and webhook.download.archive.unpack: tests/download/test_archive.py runs this file
with pytest under Debian's python3 as well."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from webhook.download.archive.unpack import UnsafeArchive, member_problem, unpack_tar_stream, volume_size_needed

MiB = 1 << 20


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, linkname
    return m


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


class OneWayStream:
    """A socket-like reader: no seek, short reads, as the network gives them."""

    def __init__(self, data: bytes, piece: int = 3000) -> None:
        self.data, self.pos, self.piece = data, 0, piece

    def read(self, n: int = -1) -> bytes:
        n = self.piece if n < 0 else min(n, self.piece)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("name,kind,link,why", [
    ("/etc/passwd", tarfile.REGTYPE, "", "absolute path"),
    ("a/../../x", tarfile.REGTYPE, "", "'..'"),
    ("../x", tarfile.REGTYPE, "", "'..'"),
    ("a/link", tarfile.SYMTYPE, "../../etc", "outside"),
    ("link", tarfile.SYMTYPE, "/etc/passwd", "absolute path"),
    ("hard", tarfile.LNKTYPE, "../outside", "outside"),
    ("dev", tarfile.CHRTYPE, "", "device"),
    ("fifo", tarfile.FIFOTYPE, "", "fifo"),
    (".model-cache-tmp/x", tarfile.REGTYPE, "", "reserved"),
])
def test_unsafe_members_are_named(name: str, kind: bytes, link: str, why: str) -> None:
    problem = member_problem(_member(name, kind, link))
    assert problem is not None and why in problem and name in problem


@pytest.mark.parametrize("name,kind,link", [
    ("weights/model.bin", tarfile.REGTYPE, ""),
    ("./config.json", tarfile.REGTYPE, ""),
    ("weights/latest", tarfile.SYMTYPE, "model.bin"),
    ("a/b/up", tarfile.SYMTYPE, "../c"),
    ("copy.bin", tarfile.LNKTYPE, "weights/model.bin"),
])
def test_safe_members_pass(name: str, kind: bytes, link: str) -> None:
    assert member_problem(_member(name, kind, link)) is None


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_stream_is_unpacked_from_a_reader_that_cannot_seek(tmp_path: Path, mode: str) -> None:
    weights = os.urandom(300_000)
    data = _tar([(_member("weights/model.bin"), weights), (_member("config.json"), b"{}"),
                 (_member("weights/latest", tarfile.SYMTYPE, "model.bin"), b""),
                 (_member("copy.bin", tarfile.LNKTYPE, "weights/model.bin"), b"")], mode)
    unpack_tar_stream(OneWayStream(data), tmp_path)
    assert (tmp_path / "weights" / "model.bin").read_bytes() == weights
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert os.readlink(tmp_path / "weights" / "latest") == "model.bin"
    assert (tmp_path / "copy.bin").read_bytes() == weights


def test_modes_are_tamed(tmp_path: Path) -> None:
    m = _member("run.sh")
    m.mode = 0o6777  # setuid, setgid, world-writable
    unpack_tar_stream(OneWayStream(_tar([(m, b"#!/bin/sh\n")])), tmp_path)
    assert (tmp_path / "run.sh").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize("name,kind,link", [
    ("../escape.txt", tarfile.REGTYPE, ""),
    ("/abs.txt", tarfile.REGTYPE, ""),
    ("out", tarfile.SYMTYPE, "../../.."),
])
def test_an_unsafe_stream_is_refused_and_nothing_lands_outside(tmp_path: Path, name: str, kind: bytes,
                                                                link: str) -> None:
    target = tmp_path / "model"
    target.mkdir()
    data = _tar([(_member(name, kind, link), b"nope")])
    with pytest.raises(UnsafeArchive, match="unsafe member"):
        unpack_tar_stream(OneWayStream(data), target)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model"]


def test_volume_size_needed() -> None:
    s = 50 * MiB
    assert volume_size_needed(s, "https://m.example.com/asr.zip") == 2 * s      # archive beside its contents
    assert volume_size_needed(s, "https://m.example.com/asr.tar.gz") == s       # streamed
    assert volume_size_needed(s, "https://m.example.com/asr.tgz?sig=x") == s
    assert volume_size_needed(s, "https://m.example.com/weights.bin") == s
    assert volume_size_needed(s, "hf://org/repo") == s
    assert volume_size_needed(s, "s3://bucket/model.zip") == s                  # s3 objects are never unpacked
