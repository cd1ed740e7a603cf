"""Archives from a real local origin: tar unpacked as it streams in when the
volume has no room to keep it, verified before anything is published,
resumed inside a run; zip (and a tar with room) kept beside its contents,
with the volume size that needs and what a full volume says; the same
checks under the oldest Python the project claims (Debian 12's 3.11.2)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.download.origin import Origin
from tests.download.support import model_files, run_download
from tests.helpers import REPO, tar_archive, zip_archive
from webhook.download.archive.unpack import volume_size_needed

MiB = 1 << 20
# Debian's python3 (3.11.2) in a venv with the package's dependencies: scripts/oldest-python
# makes it, and scripts/test passes its path.
OLDEST_PYTHON = Path(os.environ.get("MODEL_CACHE_OLDEST_PYTHON", "/nonexistent/oldest-python"))
WHY_NO_OLDEST = f"no {OLDEST_PYTHON}: scripts/test makes it with scripts/oldest-python"
# Our lock, progress and plan-key files: a page each on tmpfs.
BOOKKEEPING = 64 << 10


def _files(n: int = 6, size: int = 512 << 10) -> dict[str, bytes]:
    return {f"weights/part-{i}.bin": os.urandom(size) for i in range(n)} | {"config.json": b"{}"}


def _model_size(files: dict[str, bytes]) -> int:
    """What an admin writes as the policy's `size`: the files, plus our own few pages."""
    return sum(len(d) for d in files.values()) + BOOKKEEPING


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar", "w"), (".tar.xz", "w:xz")])
def test_tar_streams_into_a_volume_of_exactly_the_models_size(origin: Origin, dl_env, tmpfs, suffix: str,
                                                             mode: str) -> None:
    files = _files()
    archive = tar_archive(files, mode)
    origin.files[f"/asr{suffix}"] = archive
    source = f"{origin.url}/asr{suffix}"
    volume = tmpfs(volume_size_needed(_model_size(files), source))  # what the mutation sizes the emptyDir to
    dest = volume / "asr" / "main"
    r = run_download(dl_env, source, dest, "--sha256", hashlib.sha256(archive).hexdigest())
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == files
    assert "as it streams in" in r.stdout
    assert origin.served[f"/asr{suffix}"] == len(archive)  # one pass over the archive
    marker = json.loads((dest / ".model-cache.json").read_text())
    assert marker["archive"]["checksum"] == hashlib.sha256(archive).hexdigest()


def test_a_tar_whose_digest_is_wrong_is_never_published(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = _files(2)
    archive = tar_archive(files, "w")  # uncompressed: a flipped byte still unpacks, only the digest can tell
    origin.files["/m.tar"] = archive
    origin.corrupt_gets["/m.tar"] = 2  # both attempts get a flipped first byte
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/m.tar", dest, "--sha256", hashlib.sha256(archive).hexdigest())
    assert r.returncode == 6, r.stderr
    assert "fetched twice" in r.stderr
    assert not dest.exists()
    assert origin.gets["/m.tar"] == 2


def test_a_corrupt_tar_stream_is_fetched_once_more(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = _files(2)
    archive = tar_archive(files)
    origin.files["/m.tar.gz"] = archive
    origin.corrupt_gets["/m.tar.gz"] = 1  # gzip's magic broken: unreadable, the digest says why
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/m.tar.gz", dest, "--sha256", hashlib.sha256(archive).hexdigest())
    assert r.returncode == 0, r.stderr
    assert "checksum mismatch" in r.stdout
    assert model_files(dest) == files


def test_a_stalled_tar_stream_resumes_where_it_stopped(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = _files(4)
    archive = tar_archive(files)
    origin.files["/m.tgz"] = archive
    origin.stall_once.add("/m.tgz")  # the first GET sends half, then hangs
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/m.tgz", dest, "--stall-timeout", "1",
                     "--sha256", hashlib.sha256(archive).hexdigest())
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == files
    assert origin.gets["/m.tgz"] == 2
    ranges = [rng for (m, p, rng, _h) in origin.log if m == "GET" and p == "/m.tgz"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert origin.served["/m.tgz"] == len(archive)  # no byte twice


def test_a_zip_needs_room_for_itself_and_its_contents(origin: Origin, dl_env, tmpfs,
                                                      termination_log: Path) -> None:
    files = _files()
    archive = zip_archive(files)
    origin.files["/asr.zip"] = archive
    source = f"{origin.url}/asr.zip"
    small = tmpfs(_model_size(files))
    r = run_download(dl_env, source, small / "asr" / "main")
    assert r.returncode == 9, r.stderr
    assert "unpacking the 3.1Mi .zip archive (kept beside its contents while it is unpacked)" in r.stderr, r.stderr
    assert "the volume has 3Mi in all" in r.stderr and "can never fit" in r.stderr
    assert "raise the model's `size` in the policy" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert termination_log.read_text() == r.stderr.strip()
    assert not (small / "asr" / "main").exists()

    enough = tmpfs(volume_size_needed(_model_size(files), source))
    r = run_download(dl_env, source, enough / "asr" / "main")
    assert r.returncode == 0, r.stderr
    assert model_files(enough / "asr" / "main") == files


def test_a_kept_tar_that_fills_the_volume_says_it_was_kept(origin: Origin, dl_env, tmpfs,
                                                         termination_log: Path) -> None:
    """A tar with room beside its contents is fetched whole, then unpacked:
    when its contents still fill the volume (here: many one-byte files, a
    page each on tmpfs), the message says the archive was kept, not streamed."""
    files = {f"tokens/{i:04d}.txt": b"x" for i in range(400)}
    archive = tar_archive(files, "w")
    origin.files["/vocab.tar"] = archive
    size = BOOKKEEPING + (16 << 10)
    small = tmpfs(len(archive) + size + BOOKKEEPING)
    r = run_download(dl_env, f"{origin.url}/vocab.tar", small / "vocab" / "main", "--size", str(size))
    assert r.returncode == 9, r.stderr
    assert "archive (kept beside its contents while it is unpacked) filled the volume" in r.stderr, r.stderr
    assert "streamed" not in r.stderr, r.stderr
    assert termination_log.read_text() == r.stderr.strip()
    assert not (small / "vocab" / "main").exists()


@pytest.mark.skipif(not OLDEST_PYTHON.exists() and os.environ.get("CI") != "true", reason=WHY_NO_OLDEST)
def test_archive_checks_pass_on_the_oldest_python() -> None:
    version = subprocess.run([str(OLDEST_PYTHON), "-c", "import sys; print(sys.version_info[:3])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    r = subprocess.run([str(OLDEST_PYTHON), "-m", "pytest", "-q", "--noconftest", "-o", "addopts=",
                        "-p", "no:cacheprovider", "tests/download/test_archive_members.py",
                        "tests/download/test_archive_attacks.py"],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"under Python {version}:\n{r.stdout}\n{r.stderr}"


@pytest.mark.skipif(not OLDEST_PYTHON.exists() and os.environ.get("CI") != "true", reason=WHY_NO_OLDEST)
def test_the_downloader_unpacks_on_the_oldest_python(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = _files(2)
    origin.files["/m.tar.gz"] = tar_archive(files)
    origin.files["/evil.tar.gz"] = tar_archive({"../escape.txt": b"nope"})
    cli = [str(OLDEST_PYTHON), "-c", "import sys; from webhook.cli import main; sys.exit(main())", "download"]
    env = dict(dl_env, PYTHONPATH=str(REPO))

    def run(name: str, dest: Path) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, "--source", f"{origin.url}/{name}", "--dest", str(dest)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    r = run("m.tar.gz", tmp_path / "m" / "main")
    assert r.returncode == 0, r.stderr
    assert model_files(tmp_path / "m" / "main") == files
    r = run("evil.tar.gz", tmp_path / "e" / "main")
    assert r.returncode == 7 and "unsafe member, refused: ../escape.txt: '..' in the path" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "e" / "escape.txt").exists()


def _wait_for(cond, what: str, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _bytes_under(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".model-cache-tmp" not in p.parts)


@pytest.mark.parametrize("kill_at", [0.3, 0.75])  # inside small members; inside the large one
def test_a_killed_plain_tar_resumes_where_its_bytes_end(origin: Origin, dl_env, tmpfs, kill_at: float) -> None:
    from tests.download.support import start_download

    files = {f"shard-{i}.bin": os.urandom(MiB) for i in range(6)} | {"model.bin": os.urandom(10 * MiB)}
    archive = tar_archive(files, "w")
    origin.files["/m.tar"] = archive
    origin.throttle = 0.02  # ~3 MB/s: time to kill it half-way
    size = _model_size(files)
    volume = tmpfs(size)  # no room to keep the archive beside its contents: it streams
    dest = volume / "m" / "main"
    args = ("--sha256", hashlib.sha256(archive).hexdigest(), "--size", str(size))
    p = start_download(dl_env, f"{origin.url}/m.tar", dest, *args)
    partial = dest.parent / "main.partial"
    _wait_for(lambda: partial.exists() and _bytes_under(partial) > kill_at * sum(map(len, files.values())),
              what=f"{kill_at:.0%} unpacked")
    p.kill()  # SIGKILL
    p.wait()
    first = origin.total_served()
    origin.throttle = 0
    r = run_download(dl_env, f"{origin.url}/m.tar", dest, *args)
    assert r.returncode == 0, r.stderr
    assert "resuming at byte" in r.stdout, r.stdout
    assert model_files(dest) == files
    total = origin.total_served()
    print(f"origin bytes: {first} before the kill, {total} in all, archive {len(archive)}: {total / len(archive):.3f}x")
    assert total <= 1.1 * len(archive), f"{total} bytes from the origin for a {len(archive)}-byte archive ({first} before the kill)"


def test_a_killed_compressed_tar_with_room_resumes_its_download(origin: Origin, dl_env, tmpfs) -> None:
    from tests.download.support import start_download

    files = {f"shard-{i}.bin": os.urandom(MiB) for i in range(6)} | {"model.bin": os.urandom(10 * MiB)}
    archive = tar_archive(files, "w:gz")
    origin.files["/m.tar.gz"] = archive
    origin.throttle = 0.02
    size = _model_size(files)
    volume = tmpfs(size + len(archive) + MiB)  # room for the archive beside its contents: it is kept
    dest = volume / "m" / "main"
    args = ("--sha256", hashlib.sha256(archive).hexdigest(), "--size", str(size))
    p = start_download(dl_env, f"{origin.url}/m.tar.gz", dest, *args)
    incomplete = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete"
    _wait_for(lambda: incomplete.exists() and _bytes_under(incomplete.parent.parent) == 0 and
              sum(q.stat().st_size for q in incomplete.rglob("*") if q.is_file()) > len(archive) // 2,
              what="half the archive on the volume")
    p.kill()
    p.wait()
    first = origin.total_served()
    origin.throttle = 0
    r = run_download(dl_env, f"{origin.url}/m.tar.gz", dest, *args)
    assert r.returncode == 0, r.stderr
    assert "as it streams in" not in r.stdout and "archive" in r.stdout
    assert model_files(dest) == files
    total = origin.total_served()
    print(f"origin bytes: {first} before the kill, {total} in all, archive {len(archive)}: {total / len(archive):.3f}x")
    assert total <= 1.1 * len(archive)


def test_a_compressed_tar_without_room_streams_and_says_what_a_kill_costs(origin: Origin, dl_env, tmpfs) -> None:
    files = _files(2)
    archive = tar_archive(files, "w:gz")
    origin.files["/m.tar.gz"] = archive
    volume = tmpfs(_model_size(files))
    r = run_download(dl_env, f"{origin.url}/m.tar.gz", volume / "m" / "main", "--size", str(_model_size(files)))
    assert r.returncode == 0, r.stderr
    assert "as it streams in (no room on the volume to keep it beside its contents: a killed run starts a " \
           "compressed archive over)" in r.stdout
