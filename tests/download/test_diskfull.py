"""A full disk: a 1 MiB tmpfs mounted by the test (root only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.download.support import run_download
from tests.download.origin import Origin


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_known_size_fails_before_fetching(origin: Origin, dl_env, small_fs: Path) -> None:
    origin.files["/w.bin"] = os.urandom(3 * 1024 * 1024)
    r = run_download(dl_env, origin.url + "/w.bin", small_fs / "m" / "main")
    assert r.returncode == 5, r.stderr
    assert "the model needs 3Mi more" in r.stderr and "free" in r.stderr
    assert "Traceback" not in r.stderr
    assert origin.gets["/w.bin"] == 0  # no byte fetched for nothing
    assert not (small_fs / "m" / "main.lock").exists()


def test_unknown_size_fills_the_disk_and_keeps_the_partial(origin: Origin, dl_env, small_fs: Path,
                                                             tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    origin.files["/w.bin"] = data
    origin.no_length = True      # no Content-Length ...
    origin.ignore_range = True   # ... and no Range probe: the size is unknown until the end
    dest = small_fs / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 5, r.stderr
    assert "no space left" in r.stderr and "kept in" in r.stderr and "free" in r.stderr
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    assert inc.stat().st_size > 500_000  # kept for a resume
    assert not (dest.parent / "main.lock").exists()
    assert not dest.exists()
