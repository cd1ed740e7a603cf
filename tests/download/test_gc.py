"""model-cache gc: LRU eviction on a real directory tree."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.helpers import MODEL_CACHE, REPO, complete_model
from webhook.download.volume.gc import Entry, choose


def _gc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MODEL_CACHE, "gc", "--root", str(root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_evicts_least_recently_used_first_and_respects_locks_and_age(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    old = complete_model(root, "old", 4000, used_ago=10 * 86400)
    locked = complete_model(root, "locked", 4000, used_ago=9 * 86400)
    (locked.parent / "main.lock").write_text("{}")  # being downloaded again / evicted by another gc
    mid = complete_model(root, "mid", 4000, used_ago=5 * 86400)
    fresh = complete_model(root, "fresh", 4000, used_ago=60)  # younger than --min-age
    partial = root / "dl" / "main.partial"
    partial.mkdir(parents=True)  # a download in progress is never touched
    (partial / "x").write_bytes(b"y" * 10000)

    r = _gc(root, "--max-size", "9000", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would evict old/main" in r.stdout and "would evict mid/main" in r.stdout
    assert "locked/main" not in r.stdout and "fresh/main" not in r.stdout
    assert old.exists() and mid.exists()  # dry run changed nothing

    r = _gc(root, "--max-size", "9000")
    assert r.returncode == 0, r.stderr
    assert not old.exists() and not mid.exists()
    assert locked.exists() and fresh.exists() and partial.exists()
    assert sorted(p.name for p in (root / "old").iterdir()) == []  # nothing left aside

    r = _gc(root, "--max-size", "1000")
    assert "still" in r.stdout and "locked or used within --min-age" in r.stdout


def test_download_fast_path_refreshes_last_use(tmp_path: Path) -> None:
    dest = complete_model(tmp_path, "m", 10, used_ago=86400)
    r = subprocess.run([MODEL_CACHE, "download", "--source", "file:///nowhere",
                        "--dest", str(dest)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert time.time() - (dest / ".model-cache.json").stat().st_mtime < 600


def test_choose_is_pure_lru() -> None:
    now = 1_000_000.0
    e = lambda n, size, ago, locked=False: Entry(Path(n), size, now - ago, locked)  # noqa: E731
    entries = [e("a", 5, 100), e("b", 5, 300), e("c", 5, 200, locked=True), e("d", 5, 10)]
    evict, after = choose(entries, max_size=10, min_age=50, now=now)
    assert [x.dest.name for x in evict] == ["b", "a"]
    assert after == 10
    evict, after = choose(entries, max_size=100, min_age=50, now=now)
    assert evict == [] and after == 20


def test_bad_size_is_a_usage_error(tmp_path: Path) -> None:
    r = _gc(tmp_path, "--max-size", "lots")
    assert r.returncode == 2 and '--max-size: "lots" is not a Kubernetes quantity' in r.stderr
    # Kubernetes' m is milli: 500m is half a byte, not 500 megabytes (the old parser's reading).
    r = _gc(tmp_path, "--max-size", "500m")
    assert r.returncode == 2 and "--max-size: 500m is 0.5 bytes, not a whole number; did you mean Mi" in r.stderr


def test_abandoned_lock_does_not_pin_a_model_forever(tmp_path: Path) -> None:
    # A downloader killed between its publish and its unlock leaves a lock
    # that nobody heart-beats; after an hour gc treats it as abandoned.
    root = tmp_path / "cache"
    dest = complete_model(root, "m", 5000, used_ago=10 * 86400)
    lock = dest.parent / "main.lock"
    lock.write_text(json.dumps({"token": "gone", "pid": 1, "host": "x"}))
    t = time.time() - 2 * 3600
    os.utime(lock, (t, t))
    r = _gc(root, "--max-size", "0")
    assert r.returncode == 0, r.stderr
    assert not dest.exists() and not lock.exists()
