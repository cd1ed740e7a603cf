"""A full disk and a volume too small, on tmpfs volumes of exact sizes
mounted by the test (root only), as a memory emptyDir's sizeLimit makes them."""

from __future__ import annotations

import os
from pathlib import Path

from tests.download.origin import Origin
from tests.download.support import run_download

MiB = 1 << 20


def _fill(volume: Path, size: int) -> None:
    """Another model on the volume: space a gc could free."""
    (volume / "other-model.bin").write_bytes(b"\0" * size)


def test_known_size_that_fits_only_after_a_gc_fails_before_fetching(origin: Origin, dl_env, tmpfs) -> None:
    volume = tmpfs(4 * MiB)
    _fill(volume, 3 * MiB)
    origin.files["/w.bin"] = os.urandom(2 * MiB)
    r = run_download(dl_env, origin.url + "/w.bin", volume / "m" / "main")
    assert r.returncode == 5, r.stderr
    assert "the model needs 2Mi more" in r.stderr and "free of 4Mi" in r.stderr and "model-cache gc" in r.stderr
    assert "Traceback" not in r.stderr
    assert origin.gets["/w.bin"] == 0  # no byte fetched for nothing
    assert not (volume / "m" / "main.lock").exists()


def test_known_size_that_can_never_fit_says_so_once(origin: Origin, dl_env, tmpfs, termination_log: Path) -> None:
    volume = tmpfs(1 * MiB)
    origin.files["/w.bin"] = os.urandom(3 * MiB)
    r = run_download(dl_env, origin.url + "/w.bin", volume / "m" / "main")
    assert r.returncode == 9, r.stderr
    line = "model-cache: the model is 3Mi and the volume of"
    assert r.stderr.startswith(line) and r.stderr.count("\n") == 1, r.stderr
    assert "has 1Mi in all: it can never fit, restarts will not help" in r.stderr
    assert "raise the model's `size` in the policy" in r.stderr
    assert termination_log.read_text() == r.stderr.strip()  # what `kubectl describe pod` shows
    assert origin.gets["/w.bin"] == 0


def test_unknown_size_fills_the_disk_and_keeps_the_partial(origin: Origin, dl_env, tmpfs) -> None:
    volume = tmpfs(2 * MiB)
    _fill(volume, 1 * MiB)
    origin.files["/w.bin"] = os.urandom(2 * MiB)
    origin.no_length = True      # no Content-Length ...
    origin.ignore_range = True   # ... and no Range probe: the size is unknown until the end
    dest = volume / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 5, r.stderr
    assert "no space left" in r.stderr and "kept in" in r.stderr and "free" in r.stderr
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    assert inc.stat().st_size > 500_000  # kept for a resume
    assert not (dest.parent / "main.lock").exists()
    assert not dest.exists()


def test_unknown_size_on_a_volume_of_its_own_can_never_fit(origin: Origin, dl_env, tmpfs) -> None:
    volume = tmpfs(1 * MiB)
    origin.files["/w.bin"] = os.urandom(2 * MiB)
    origin.no_length = True
    origin.ignore_range = True
    r = run_download(dl_env, origin.url + "/w.bin", volume / "m" / "main")
    assert r.returncode == 9, r.stderr
    assert "the model can never fit on it" in r.stderr and "`size`" in r.stderr
