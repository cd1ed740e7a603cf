"""http(s) sources against a real local origin: files, archives, checksums,
Range edge cases, the stall watchdog, auth and missing URLs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.download.support import model_files, run_download
from tests.download.origin import Origin
from tests.helpers import tar_archive, zip_archive


def test_single_file_with_sha256_and_marker(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(1_500_000)
    origin.files["/models/weights.bin"] = data
    dest = tmp_path / "cache" / "m" / "main"
    r = run_download(dl_env, origin.url + "/models/weights.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"weights.bin": data}
    marker = json.loads((dest / ".model-cache.json").read_text())
    assert marker["complete"] is True
    assert marker["files"] == [{"path": "weights.bin", "size": len(data), "verified": "sha256",
                                "checksum": hashlib.sha256(data).hexdigest(), "checksum_source": "policy"}]
    assert "verified: 1 by sha256 (policy)" in r.stdout
    # Nothing is left beside the model.
    assert sorted(p.name for p in dest.parent.iterdir()) == ["main"]


def test_fast_path_needs_no_network(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = b"x" * 1000
    dest = tmp_path / "m" / "main"
    assert run_download(dl_env, origin.url + "/w.bin", dest).returncode == 0
    before = (dest / ".model-cache.json").stat().st_mtime_ns
    os.utime(dest / ".model-cache.json", ns=(before - 10**10, before - 10**10))
    origin.stop()  # the origin is gone: the fast path must not need it
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert "nothing to download" in r.stdout
    # The use was recorded for gc.
    assert (dest / ".model-cache.json").stat().st_mtime_ns > before - 10**10


def test_tar_gz_and_zip_are_unpacked(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = {"config.json": b"{}", "weights/part-0.bin": os.urandom(200_000)}
    origin.files["/a/model.tar.gz"] = tar_archive(files)
    origin.files["/a/model.zip"] = zip_archive(files)
    for name in ("model.tar.gz", "model.zip"):
        dest = tmp_path / name / "main"
        archive = origin.files[f"/a/{name}"]
        r = run_download(dl_env, f"{origin.url}/a/{name}", dest, "--sha256", hashlib.sha256(archive).hexdigest())
        assert r.returncode == 0, r.stderr
        assert model_files(dest) == files
        marker = json.loads((dest / ".model-cache.json").read_text())
        assert marker["archive"] == {"verified": "sha256", "checksum": hashlib.sha256(archive).hexdigest(),
                                     "checksum_source": "policy"}
        assert "archive verified: sha256 (policy)" in r.stdout
        assert {f["path"] for f in marker["files"]} == set(files)


def test_archive_with_unsafe_member_is_refused(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/evil.tar"] = tar_archive({"../escape.txt": b"nope"})
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/evil.tar", dest)
    assert r.returncode != 0
    assert "unsafe member" in r.stderr
    assert not (tmp_path / "m" / "escape.txt").exists() and not dest.exists()


def test_checksum_mismatch_refetches_once_then_succeeds(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    origin.files["/w.bin"] = data
    origin.corrupt_gets["/w.bin"] = 1  # the first GET flips a byte
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert "fetching it once more" in r.stdout
    assert origin.gets["/w.bin"] == 2
    assert model_files(dest) == {"w.bin": data}


def test_checksum_mismatch_twice_fails_with_exit_6(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = os.urandom(100_000)
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", "0" * 64)
    assert r.returncode == 6
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "expected 0000" in r.stderr and "fetched twice" in r.stderr
    assert not dest.exists()


def test_401_names_the_secret_and_404_names_the_url(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/private.bin"] = b"secret"
    origin.token = "s3cr3t"
    env = dict(dl_env, MODEL_CACHE_AUTH_SECRET="model-token")
    r = run_download(env, origin.url + "/private.bin", tmp_path / "a" / "main")
    assert r.returncode == 3, r.stderr
    assert "HTTP 401" in r.stderr and "set MODEL_CACHE_HTTP_TOKEN in Secret model-token" in r.stderr
    assert "Traceback" not in r.stderr

    r = run_download(dict(env, MODEL_CACHE_HTTP_TOKEN="s3cr3t"), origin.url + "/private.bin", tmp_path / "b" / "main")
    assert r.returncode == 0, r.stderr
    assert "s3cr3t" not in r.stdout + r.stderr  # never in a log line

    r = run_download(env, origin.url + "/missing.bin?X-Amz-Signature=abc", tmp_path / "c" / "main")
    assert r.returncode == 4
    assert f"{origin.url}/missing.bin" in r.stderr and "not found" in r.stderr
    assert "X-Amz-Signature" not in r.stderr  # query strings may carry credentials


def test_range_answered_with_200_restarts_the_file(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(400_000)
    origin.files["/w.bin"] = data
    origin.ignore_range = True
    dest = tmp_path / "m" / "main"
    # A leftover partial file from an earlier run, with wrong bytes: appending would corrupt.
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    inc.parent.mkdir(parents=True)
    inc.write_bytes(b"\0" * 100_000)
    # ... that came with the origin's ETag, so that it is resumed (no validator: it starts from zero).
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    inc.with_name("w.bin.validator").write_text(json.dumps({"size": len(data), "validator": etag}))
    key = dest.parent / "main.partial" / ".model-cache-tmp" / "plan-key"
    key.write_text(f"http|{origin.url}/w.bin|")
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "w.bin").read_bytes() == data
    assert origin.log[-1][2] == "bytes=100000-"  # it did ask for a Range


def test_stalled_connection_is_retried_by_range(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(1_000_000)
    origin.files["/w.bin"] = data
    origin.stall_once.add("/w.bin")
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--stall-timeout", "1")
    assert r.returncode == 0, r.stderr
    assert (dest / "w.bin").read_bytes() == data
    ranges = [rng for (method, path, rng, _h) in origin.log if method == "GET" and path == "/w.bin"]
    assert ranges == [None, "bytes=500000-"]
    assert origin.served["/w.bin"] == len(data)  # every byte once, across the stall


def test_bad_source_is_a_usage_error(dl_env, tmp_path: Path) -> None:
    r = run_download(dl_env, "ftp://x/y", tmp_path / "m" / "main")
    assert r.returncode == 2
    assert "unsupported scheme" in r.stderr
    assert not (tmp_path / "m" / "main.lock").exists()


def _kill_when_served(origin: Origin, proc, path: str, at_least: int) -> None:
    """kill -9 once the origin has sent AT_LEAST bytes of PATH (and they reached the file)."""
    import signal
    import time

    deadline = time.monotonic() + 60
    while origin.served[path] < at_least:
        assert time.monotonic() < deadline, f"only {origin.served[path]} bytes served"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_no_splice_on_resume_without_a_validator(origin: Origin, dl_env, tmp_path: Path) -> None:
    from tests.download.support import start_download

    old, new = os.urandom(8 << 20), os.urandom(8 << 20)
    origin.files["/w.bin"] = old
    origin.no_validator = True  # no ETag, no Last-Modified, and no --sha256: nothing tells the versions apart
    origin.throttle = 0.01
    dest = tmp_path / "m" / "main"
    _kill_when_served(origin, start_download(dl_env, origin.url + "/w.bin", dest), "/w.bin", 2 << 20)
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    assert inc.stat().st_size > 0
    origin.throttle = 0.0
    origin.files["/w.bin"] = new  # same size, other bytes
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "w.bin").read_bytes() == new  # not old's head and new's tail
    assert [rng for (m, p, rng, _h) in origin.log if m == "GET" and p == "/w.bin"][-1] is None
    assert "fetching it again from the start" in r.stdout


def test_resume_with_a_validator_continues(origin: Origin, dl_env, tmp_path: Path) -> None:
    from tests.download.support import start_download

    data = os.urandom(8 << 20)
    origin.files["/w.bin"] = data
    origin.throttle = 0.01
    dest = tmp_path / "m" / "main"
    _kill_when_served(origin, start_download(dl_env, origin.url + "/w.bin", dest), "/w.bin", 2 << 20)
    origin.throttle = 0.0
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "w.bin").read_bytes() == data
    last = [(rng, h) for (m, p, rng, h) in origin.log if m == "GET" and p == "/w.bin"][-1]
    assert last[0] is not None and last[0] != "bytes=0-" and last[1].get("If-Range")  # resumed, guarded
