"""Archives that must unpack as they are, on every Python the project
claims, 3.11.0-3.11.3 included (no tarfile filters there). Only the standard
library and webhook.download.archive: tests/download/test_archive.py runs
this file (and test_archive_attacks.py) under Debian's python3 as well."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from tests.download.archive_kit import OneWayStream, member, tar_of, zip_of
from webhook.download.archive.unpack import Budget, unpack_tar_stream, unpack_zip, volume_size_needed

MiB = 1 << 20


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_stream_is_unpacked_from_a_reader_that_cannot_seek(tmp_path: Path, mode: str) -> None:
    weights = os.urandom(300_000)
    data = tar_of([(member("./", tarfile.DIRTYPE, mode=0o755), b""),
                   (member("weights/model.bin"), weights), (member("config.json"), b"{}"),
                   (member("weights/latest", tarfile.SYMTYPE, "model.bin"), b""),
                   (member("tokenizer", tarfile.SYMTYPE, "weights/../weights/latest"), b""),
                   (member("a/b/up", tarfile.SYMTYPE, "../../config.json"), b""),
                   (member("copy.bin", tarfile.LNKTYPE, "weights/model.bin"), b"")], mode)
    unpack_tar_stream(OneWayStream(data), tmp_path, Budget(2 * 300_000, "m"))  # a hard link is not counted twice
    assert (tmp_path / "weights" / "model.bin").read_bytes() == weights
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert os.readlink(tmp_path / "weights" / "latest") == "model.bin"
    assert (tmp_path / "tokenizer").read_bytes() == weights
    assert (tmp_path / "a" / "b" / "up").read_bytes() == b"{}"
    assert (tmp_path / "copy.bin").read_bytes() == weights
    assert (tmp_path / "copy.bin").stat().st_ino == (tmp_path / "weights" / "model.bin").stat().st_ino


def test_modes_are_tamed(tmp_path: Path) -> None:
    unpack_tar_stream(OneWayStream(tar_of([(member("run.sh", mode=0o6777), b"#!/bin/sh\n"),
                                           (member("shared", tarfile.DIRTYPE, mode=0o1777), b"")])), tmp_path)
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o755   # setuid, setgid, world-writable dropped
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755   # sticky, world-writable dropped
    assert (tmp_path / "run.sh").stat().st_uid == os.geteuid()


def test_a_zip_is_unpacked_with_its_folders(tmp_path: Path) -> None:
    archive = tmp_path / ".model-cache-tmp" / "download" / "archive.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(zip_of([("weights/", b""), ("weights/a.bin", b"A" * 1000), ("./config.json", b"{}")]))
    unpack_zip(archive, tmp_path, Budget(1002, "m"))
    assert (tmp_path / "weights" / "a.bin").read_bytes() == b"A" * 1000
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert archive.exists()  # the caller deletes it


def test_volume_size_needed() -> None:
    s = 50 * MiB
    assert volume_size_needed(s, "https://m.example.com/asr.zip") == 2 * s      # archive beside its contents
    assert volume_size_needed(s, "https://m.example.com/asr.tar.gz") == s       # may stream
    assert volume_size_needed(s, "https://m.example.com/asr.tgz?sig=x") == s
    assert volume_size_needed(s, "https://m.example.com/weights.bin") == s
    assert volume_size_needed(s, "hf://org/repo") == s
    assert volume_size_needed(s, "s3://bucket/model.zip") == s                  # s3 objects are never unpacked
