"""Large files as parallel ranged parts, against the real local origin: the
requests the origin sees, part-level resume after a real kill -9, an object
that changes mid-download, an origin that ignores Range, Retry-After, a
stalled part. Files are just above the 64 MiB threshold (16 MiB parts)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path

from tests.download.support import model_files, run_download, start_download
from tests.download.origin import HubRepo, Origin

MiB = 1 << 20
SIZE = 80 * MiB  # 5 parts of 16 MiB


def _data(size: int = SIZE) -> bytes:
    # Random per 1 MiB block and cheap to make: a spliced or shifted part
    # would not match.
    block = os.urandom(MiB)
    return b"".join(bytes([i & 0xFF]) + block[1:] for i in range(size // MiB)) + os.urandom(size % MiB)


def _gets(origin: Origin, path: str) -> list[str | None]:
    return [rng for (method, p, rng, _h) in origin.log if method == "GET" and p == path]


def _span(rng: str | None) -> tuple[int, int]:
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", rng or "")
    assert m, rng
    return int(m.group(1)), int(m.group(2))


def _wait_for(condition, proc, timeout: float = 60) -> None:  # noqa: ANN001 - a predicate, a Popen
    """Polls CONDITION until it holds; fails early if the download exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the download exited: {proc.communicate()}"
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def test_large_file_is_fetched_as_parallel_ranged_parts(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    origin.files["/big.bin"] = data
    origin.files["/small.bin"] = b"s" * 1000
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"big.bin": data}
    spans = sorted(_span(rng) for rng in _gets(origin, "/big.bin"))
    # Five ranged requests that tile the file exactly, each byte served once.
    assert spans == [(i * 16 * MiB, (i + 1) * 16 * MiB - 1) for i in range(5)]
    assert origin.served["/big.bin"] == len(data)
    # No journal or scratch left, and the marker has the digest.
    marker = json.loads((dest / ".model-cache.json").read_text())
    assert marker["files"][0]["checksum"] == hashlib.sha256(data).hexdigest()
    assert not (dest.parent / "main.partial").exists()

    # Below the threshold: one stream.
    r = run_download(dl_env, origin.url + "/small.bin", tmp_path / "s" / "main")
    assert r.returncode == 0, r.stderr
    assert _gets(origin, "/small.bin") == [None]


def test_hf_large_lfs_file_in_parts(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    origin.repos["org/big"] = HubRepo(commit="c" * 40, files={"model.safetensors": data, "config.json": b"{}"},
                                      lfs={"model.safetensors"})
    dest = tmp_path / "m" / "main"
    r = run_download(dict(dl_env, HF_ENDPOINT=origin.url), "hf://org/big", dest)
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"model.safetensors": data, "config.json": b"{}"}
    path = f"/org/big/resolve/{'c' * 40}/model.safetensors"
    assert len(_gets(origin, path)) == 5 and origin.served[path] == len(data)


def test_hf_parts_go_to_the_cdn_without_the_token(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    commit = "d" * 40
    origin.repos["org/cdn"] = HubRepo(commit=commit, files={"model.safetensors": data, "config.json": b"{}"},
                                      lfs={"model.safetensors"}, private=True)
    origin.token = "hf_secret"
    origin.cdn_host = "localhost"  # another host name for the same loopback server
    dest = tmp_path / "m" / "main"
    r = run_download(dict(dl_env, HF_ENDPOINT=origin.url, HF_TOKEN="hf_secret"), "hf://org/cdn", dest)
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"model.safetensors": data, "config.json": b"{}"}
    resolve = f"/org/cdn/resolve/{commit}/model.safetensors"
    cdn = f"/cdn/org/cdn/{commit}/model.safetensors"
    # One HEAD on the Hub finds the CDN URL; every part goes straight there.
    assert [m for (m, p, _r, _h) in origin.log if p == resolve] == ["HEAD"]
    assert len(_gets(origin, cdn)) == 5 and origin.served[cdn] == len(data)
    # The Hub's token never goes to the CDN's host (it did go to the Hub).
    def auth(h: dict) -> str | None:
        return {k.lower(): v for k, v in h.items()}.get("authorization")

    assert all(auth(h) is None for (_m, p, _r, h) in origin.log if p == cdn)
    assert [auth(h) for (_m, p, _r, h) in origin.log if p == resolve] == ["Bearer hf_secret"]


def test_kill_9_resumes_at_part_granularity(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    origin.files["/big.bin"] = data
    origin.throttle = 0.03  # ~2 MB/s per connection: the kill lands mid-parts
    dest = tmp_path / "m" / "main"
    p = start_download(dl_env, origin.url + "/big.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    journal = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "big.bin.parts"
    _wait_for(lambda: origin.total_served() >= SIZE * 0.3 and journal.exists(), p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    first = origin.total_served()
    assert 0.3 * SIZE <= first < SIZE

    origin.throttle = 0.0
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert (dest / "big.bin").read_bytes() == data
    refetched = origin.total_served() - SIZE
    assert refetched < 0.05 * SIZE, (refetched, first)
    # The resumed run asked for the rest of unfinished parts only, from where each stopped.
    resumed = _gets(origin, "/big.bin")[5:]
    assert 0 < len(resumed) <= 5 and any(_span(rng)[0] % (16 * MiB) for rng in resumed)


def test_object_changed_mid_download_is_never_spliced(origin: Origin, dl_env, tmp_path: Path) -> None:
    old, new = _data(), _data()
    origin.files["/big.bin"] = old
    # After 20 MiB has gone out, the origin serves another object (another ETag).
    origin.change_after["/big.bin"] = (20 * MiB, new)
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert "changed on the origin" in r.stdout
    got = (dest / "big.bin").read_bytes()
    assert got == new  # all of the new object, nothing of the old one
    # The later part requests carried If-Range with the old ETag; the restart is one plain stream.
    old_etag = f'"{hashlib.md5(old).hexdigest()}"'
    assert any(h.get("If-Range") == old_etag for (_m, p, _r, h) in origin.log if p == "/big.bin")
    assert _gets(origin, "/big.bin")[-1] is None


def test_changed_between_kill_and_resume_starts_over(origin: Origin, dl_env, tmp_path: Path) -> None:
    old, new = _data(), _data()
    origin.files["/big.bin"] = old
    origin.throttle = 0.03
    dest = tmp_path / "m" / "main"
    p = start_download(dl_env, origin.url + "/big.bin", dest)
    _wait_for(lambda: origin.total_served() >= SIZE * 0.3, p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    origin.throttle = 0.0
    origin.files["/big.bin"] = new
    r = run_download(dl_env, origin.url + "/big.bin", dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "big.bin").read_bytes() == new


def test_origin_ignoring_range_falls_back_to_one_stream(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    origin.files["/big.bin"] = data
    origin.ignore_range = True
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert "ignores Range" in r.stdout
    assert (dest / "big.bin").read_bytes() == data
    gets = _gets(origin, "/big.bin")
    assert gets[-1] is None and all(g is not None for g in gets[:-1])


def test_origin_without_size_is_one_stream(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    origin.files["/big.bin"] = data
    # No Content-Length, and no Content-Range to the size probe's 1-byte Range: the size is unknown.
    origin.no_length = True
    origin.ignore_range = True
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/big.bin", dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "big.bin").read_bytes() == data
    assert _gets(origin, "/big.bin") == ["bytes=0-0", None]


def test_retry_after_is_honoured_on_503_and_429(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = b"w" * 5000
    origin.busy["/w.bin"] = [(503, "1"), (429, "1")]
    dest = tmp_path / "m" / "main"
    # The backoff alone would wait ~0.05 s (MODEL_CACHE_RETRY_BACKOFF in dl_env).
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    t = origin.times["/w.bin"]
    assert len(t) == 3
    assert t[1] - t[0] >= 0.95 and t[2] - t[1] >= 0.95, [b - a for a, b in zip(t, t[1:])]
    assert "Retry-After 1s" in r.stdout


def test_stalled_part_is_re_requested_alone(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = _data()
    origin.files["/big.bin"] = data
    origin.stall_at["/big.bin"] = 40 * MiB  # in the middle of part 3 (32-48 MiB)
    dest = tmp_path / "m" / "main"
    # The origin holds the stalled part until the client gives up (up to 30 s);
    # 5 s of silence is far beyond what a healthy part on a loaded 2-core
    # machine goes without a byte, where 1 s made other parts time out too.
    r = run_download(dl_env, origin.url + "/big.bin", dest, "--stall-timeout", "5",
                     "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert (dest / "big.bin").read_bytes() == data
    spans = sorted(_span(rng) for rng in _gets(origin, "/big.bin"))
    assert (40 * MiB, 48 * MiB - 1) in spans  # the rest of that part, nothing else again
    assert len(spans) == 6
    assert origin.served["/big.bin"] == len(data)  # the stalled part's received bytes were kept
    assert "part 3/5" in r.stdout
    # Retry and progress lines come from different threads, each written whole.
    assert all(line.startswith("model-cache: ") for line in r.stdout.splitlines()), r.stdout
