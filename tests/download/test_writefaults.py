"""Writes that fail stop the file: a real FUSE file system (faultyfs.py)
fails write, fsync/fdatasync or fallocate after N bytes, on the parted path
(a file above 64 MiB, pwrite + fdatasync + the journal) and on the single
stream (write + fsync). Nothing is ever published, and the message names the
cause and the fix."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.download.origin import Origin
from tests.download.support import run_download

MiB = 1 << 20
PARTED = 80 * MiB   # above the 64 MiB threshold: ranged parts written with pwrite
SINGLE = 12 * MiB   # one stream, fsynced at its end (above 8 MiB)


def _setup(origin: Origin, size: int) -> tuple[bytes, str]:
    data = os.urandom(MiB) * (size // MiB)
    origin.files["/big.bin"] = data
    return data, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [PARTED, SINGLE], ids=["parted", "single"])
def test_a_failed_fsync_is_never_published(origin: Origin, dl_env, faulty_fs, size: int) -> None:
    # Reported once, as Linux does: a retried fsync would succeed and lie.
    volume = faulty_fs("fsync", 8 * MiB, "EIO", "big.bin")
    _data, sha = _setup(origin, size)
    dest = volume / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", sha, timeout=180)
    assert r.returncode == 7, r.stderr
    assert "Input/output error (EIO)" in r.stderr and "nothing was published" in r.stderr, r.stderr
    assert "check the volume" in r.stderr and "Traceback" not in r.stderr
    assert not dest.exists()


@pytest.mark.parametrize("size", [PARTED, SINGLE], ids=["parted", "single"])
def test_a_failed_write_is_never_published(origin: Origin, dl_env, faulty_fs, size: int) -> None:
    volume = faulty_fs("write", 4 * MiB, "EIO", "big.bin")
    _data, sha = _setup(origin, size)
    dest = volume / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", sha, timeout=180)
    assert r.returncode == 7, r.stderr
    assert "Input/output error (EIO)" in r.stderr and "nothing was published" in r.stderr, r.stderr
    assert not dest.exists()


@pytest.mark.parametrize("size", [PARTED, SINGLE], ids=["parted", "single"])
def test_disk_full_while_writing_is_reported_and_never_published(origin: Origin, dl_env, faulty_fs,
                                                                 size: int) -> None:
    volume = faulty_fs("write", 4 * MiB, "ENOSPC", "big.bin")
    _data, sha = _setup(origin, size)
    dest = volume / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", sha, timeout=180)
    assert r.returncode in (5, 9), r.stderr
    assert "no space left on the volume" in r.stderr and "`size`" in r.stderr, r.stderr
    assert not dest.exists()


def test_a_failed_preallocation_fetches_nothing(origin: Origin, dl_env, faulty_fs) -> None:
    volume = faulty_fs("fallocate", 0, "ENOSPC", "big.bin")
    _data, sha = _setup(origin, PARTED)
    dest = volume / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", sha, timeout=180)
    assert r.returncode in (5, 9), r.stderr
    assert "no space left on the volume" in r.stderr, r.stderr
    assert origin.gets["/big.bin"] == 0  # the parts are asked for only after the blocks are reserved
    assert not dest.exists()


def test_the_fault_file_system_passes_a_healthy_download(origin: Origin, dl_env, faulty_fs) -> None:
    """The control: the same file system without a fault publishes."""
    volume = faulty_fs("none", 0, "EIO", "big.bin")
    data, sha = _setup(origin, PARTED)
    dest = volume / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", sha, timeout=180)
    assert r.returncode == 0, r.stderr
    assert (dest / "big.bin").read_bytes() == data
