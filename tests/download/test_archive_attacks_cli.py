"""Issue 25's attacks through `model-cache download` over http, as a pod
runs it, under the project's Python and Debian's 3.11.2: a refused or
oversized archive exits with its own code and message, publishes nothing,
leaves no partial directory, and changes nothing outside its model's
directory (canaries at every level above it, a second published model)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from tests.download.archive_kit import Volume, path_max_tar, sparse_tar, tar_of, zip_of, member
from tests.download.origin import Origin
from tests.download.support import download_cmd, model_files
from tests.download.test_archive import OLDEST_PYTHON, WHY_NO_OLDEST
from tests.helpers import REPO

MiB = 1 << 20
Run = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(params=["project", "oldest"])
def run(request: pytest.FixtureRequest, dl_env: dict[str, str]) -> Run:
    """`model-cache download ...` under the project's Python, or under Debian's 3.11.2."""
    if request.param == "oldest" and not OLDEST_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(WHY_NO_OLDEST)
        pytest.skip(WHY_NO_OLDEST)

    def go(source: str, dest: Path, *extra: str) -> subprocess.CompletedProcess:
        cmd = download_cmd(source, dest, *extra)
        env = dl_env
        if request.param == "oldest":
            cmd = [str(OLDEST_PYTHON), "-c", "import sys; from webhook.cli import main; sys.exit(main())", *cmd[1:]]
            env = dict(dl_env, PYTHONPATH=str(REPO))
        return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)

    return go


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    v = Volume.make(tmp_path)
    os.rename(v.target, tmp_path / "leftover")  # the downloader makes its own partial directory
    v.before = v.outside()
    return v


def _refused_and_contained(v: Volume, r: subprocess.CompletedProcess, code: int, words: list[str]) -> None:
    assert r.returncode == code, r.stderr
    assert all(w in r.stderr for w in words), r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    dest = v.vol / "m" / "main"
    assert not dest.exists() and not (v.vol / "m" / "main.partial").exists()
    changed = [c for c in v.changes() if not c.startswith("vol/m/main") and c != "termination-log"]
    assert changed == [], changed


def _serve(origin: Origin, name: str, data: bytes) -> tuple[str, str]:
    origin.files[f"/{name}"] = data
    return f"{origin.url}/{name}", hashlib.sha256(data).hexdigest()


def test_a_bomb_stops_at_the_budget_with_its_own_exit_code(origin: Origin, run: Run, volume: Volume,
                                                           termination_log: Path) -> None:
    url, digest = _serve(origin, "m.tar.gz", tar_of([(member("zeros.bin"), bytes(256 * MiB))], "w:gz"))
    r = run(url, volume.vol / "m" / "main", "--sha256", digest, "--size", "4Mi")
    _refused_and_contained(volume, r, 10, ["archive of model m unpacks to more than its budget of 4.2Mi",
                                           "the policy's `size` 4Mi + 5%", "zeros.bin", "nothing was published"])
    assert termination_log.read_text() == r.stderr.strip()


def test_a_sparse_terabyte_is_never_published(origin: Origin, run: Run, volume: Volume) -> None:
    url, digest = _serve(origin, "big.tar", sparse_tar("big.bin", 1 << 40))
    r = run(url, volume.vol / "m" / "main", "--sha256", digest, "--size", "1Gi")
    _refused_and_contained(volume, r, 10, ["budget of 1.1Gi", "big.bin would bring it to 1Ti"])


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_a_path_max_escape_never_touches_the_model_beside(origin: Origin, run: Run, volume: Volume,
                                                          suffix: str) -> None:
    data = path_max_tar() if suffix == ".tar" else _gz(path_max_tar())
    url, digest = _serve(origin, f"evil{suffix}", data)
    r = run(url, volume.vol / "m" / "main", "--sha256", digest, "--size", "64Mi")
    _refused_and_contained(volume, r, 7, ["unsafe member, refused", "passes through the symlink a the archive made"])


def test_a_zip_that_names_its_own_archive_is_refused(origin: Origin, run: Run, volume: Volume) -> None:
    data = zip_of([("ok.bin", os.urandom(200_000)), ("./.model-cache-tmp/download/archive.zip", b"")])
    url, digest = _serve(origin, "m.zip", data)
    r = run(url, volume.vol / "m" / "main", "--sha256", digest, "--size", "1Mi")
    _refused_and_contained(volume, r, 7, ["in the reserved .model-cache-tmp/"])


def test_a_tar_with_room_is_kept_verified_and_then_unpacked(origin: Origin, run: Run, volume: Volume) -> None:
    files = {"w/a.bin": os.urandom(300_000), "config.json": b"{}"}
    url, digest = _serve(origin, "m.tgz", tar_of([(member(n), d) for n, d in files.items()], "w:gz"))
    r = run(url, volume.vol / "m" / "main", "--sha256", digest, "--size", "1Mi")
    assert r.returncode == 0, r.stderr
    assert "archive" in r.stdout and "as it streams in" not in r.stdout
    assert model_files(volume.vol / "m" / "main") == files
    assert [c for c in volume.changes() if not c.startswith("vol/m/main")] == []


def _gz(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_a_tampered_archive_with_room_is_never_unpacked(origin: Origin, run: Run, volume: Volume) -> None:
    """The policy pins a benign archive; the origin (or a hop) serves the
    PATH_MAX escape instead. Kept on the volume, it is verified first: not
    one member is read."""
    _url, digest = _serve(origin, "benign.tar", tar_of([(member("w.bin"), b"fine")]))
    url, _ = _serve(origin, "m.tar", path_max_tar())
    r = run(url, volume.vol / "m" / "main", "--sha256", digest, "--size", "64Mi")
    assert r.returncode == 6, r.stderr
    assert "unpacking" not in r.stdout and "unsafe member" not in r.stderr + r.stdout
    assert not (volume.vol / "m" / "main").exists()
    assert [c for c in volume.changes() if not c.startswith("vol/m/main")] == []
