"""The shared-volume protocol with real processes: racing replicas, kill -9
and resume, stale and dead locks, SIGTERM, the publish."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.download.support import download_cmd, model_files, run_download, start_download, tree
from tests.download.origin import HubRepo, Origin


def _wait_for(cond, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _model(n_small: int = 20) -> dict[str, bytes]:
    files = {f"shards/part-{i:02d}.bin": os.urandom(20_000 + i) for i in range(n_small)}
    files["big.safetensors"] = os.urandom(2_000_000)
    return files


def test_six_replicas_over_http_fetch_each_byte_once(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(2_000_000)
    origin.files["/model.bin"] = data
    origin.throttle = 0.005  # long enough that the others really wait
    dest = tmp_path / "cache" / "m" / "main"
    procs = [start_download(dl_env, origin.url + "/model.bin", dest) for _ in range(6)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [o[1] for o in outs]
    assert origin.served["/model.bin"] == len(data)  # origin bytes / model size == 1.00
    assert origin.gets["/model.bin"] == 1
    assert model_files(dest) == {"model.bin": data}
    assert sum("waiting for" in o[0] for o in outs) >= 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["main"]  # no lock, no partial left


def test_four_replicas_over_hf_fetch_each_byte_once(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = _model()
    origin.repos["org/llm"] = HubRepo("c" * 40, files, lfs={"big.safetensors"})
    origin.throttle = 0.002
    env = dict(dl_env, HF_ENDPOINT=origin.url)
    dest = tmp_path / "cache" / "llm" / "main"
    procs = [start_download(env, "hf://org/llm", dest) for _ in range(4)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1] for o in outs]
    resolve = {k: v for k, v in origin.served.items() if "/resolve/" in k}
    assert sum(resolve.values()) == sum(len(v) for v in files.values())
    assert model_files(dest) == files


def test_kill_9_then_rerun_fetches_only_what_was_missing(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = {"a.bin": os.urandom(300_000), "b.bin": os.urandom(3_000_000)}
    origin.repos["org/m"] = HubRepo("d" * 40, files, lfs={"a.bin", "b.bin"})
    origin.throttle = 0.01
    env = dict(dl_env, HF_ENDPOINT=origin.url)
    dest = tmp_path / "m" / "main"
    partial = dest.parent / "main.partial"
    inc = partial / ".model-cache-tmp" / "incomplete" / "b.bin"
    p = start_download(env, "hf://org/m", dest)
    _wait_for(lambda: (partial / "a.bin").exists() and inc.exists() and inc.stat().st_size > 500_000,
              what="a.bin done, b.bin half-way")
    p.kill()  # SIGKILL: no cleanup at all
    p.wait()
    assert (partial / "b.bin").exists() is False and (partial / "a.bin").exists()
    have = inc.stat().st_size
    assert (dest.parent / "main.lock").exists()  # the dead holder's lock is still there
    origin.reset_counts()
    origin.throttle = 0
    r = run_download(env, "hf://org/m", dest)
    assert r.returncode == 0, r.stderr
    assert "which is gone; taking over" in r.stdout  # same host, dead pid: no waiting for staleness
    assert model_files(dest) == files
    # a.bin is not fetched again; b.bin continues from where it stopped. (Counted by
    # request: the killed process's connection may still be draining into the void.)
    gets = [(path.rsplit("/", 1)[1], rng) for (m, path, rng, _h) in origin.log if m == "GET" and "/resolve/" in path]
    assert gets == [("b.bin", f"bytes={have}-")]
    b_path = next(p for (m, p, _r, _h) in origin.log if p.endswith("/b.bin"))
    assert origin.served_by_range[(b_path, f"bytes={have}-")] == len(files["b.bin"]) - have


def test_stale_lock_of_another_host_is_taken_over(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = b"w" * 50_000
    dest = tmp_path / "m" / "main"
    dest.parent.mkdir(parents=True)
    lock = dest.parent / "main.lock"
    # A holder on another node that stopped heart-beating (its node died).
    lock.write_text(json.dumps({"token": "dead", "pid": 1, "host": "node-b", "pod": "web-2", "node": "node-b",
                                "boot_id": "x", "pidns": "pid:[1]", "created": 0}))
    t0 = time.monotonic()
    r = run_download(dl_env, origin.url + "/w.bin", dest)  # MODEL_CACHE_STALE_SECONDS=3
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 3
    assert "waiting for pod web-2 on node node-b" in r.stdout
    assert "no heartbeat from pod web-2 on node node-b" in r.stdout
    assert (dest / "w.bin").read_bytes() == b"w" * 50_000
    assert not lock.exists()


def test_live_holder_is_waited_for_and_its_progress_shown(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(1_000_000)
    origin.files["/w.bin"] = data
    gate = origin.gates["/w.bin"] = threading.Event()  # the holder's download pauses half-way
    env = dict(dl_env, MODEL_CACHE_STALE_SECONDS="1")
    dest = tmp_path / "m" / "main"
    holder = start_download(env, origin.url + "/w.bin", dest)
    _wait_for(lambda: (dest.parent / "main.progress").exists(), what="the holder's progress file")
    log = tmp_path / "waiter.log"
    with open(log, "w") as out:
        waiter = subprocess.Popen(download_cmd(origin.url + "/w.bin", dest), env=env, stdout=out, stderr=out, text=True)
        # Several stale periods pass while the holder is paused: its heartbeat must keep the lock.
        _wait_for(lambda: log.read_text().count("waiting for") >= 6, what="the waiter's progress lines")
        gate.set()
        waiter.wait(timeout=60)
    holder.communicate(timeout=60)
    text = log.read_text()
    assert holder.returncode == 0 and waiter.returncode == 0, text
    # The waiter shows the holder's own progress: paused at its half-way gate (the origin
    # pauses at the first 64 KiB boundary past half of the file), with a rate.
    shown = re.findall(r"waiting for .+ \(pid \d+\) to download .+: (\d+)Ki / 976.5Ki \(([\d.]+)%\), ([\d.]+(?:Ki|Mi|Gi)?)/s",
                       text)
    assert len(shown) >= 6, text
    done_ki, percent, _ = shown[-1]
    assert 488 <= int(done_ki) <= 576 and 50.0 <= float(percent) <= 59.0, shown[-1]
    assert float(percent) == pytest.approx(int(done_ki) / 976.5625 * 100, abs=0.1)
    assert "taking over" not in text
    assert origin.served["/w.bin"] == len(data)


def test_sigterm_releases_the_lock_and_keeps_the_partial(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = os.urandom(2_000_000)
    origin.throttle = 0.02
    dest = tmp_path / "m" / "main"
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    p = start_download(dl_env, origin.url + "/w.bin", dest)
    _wait_for(lambda: inc.exists() and inc.stat().st_size > 100_000, what="bytes on disk")
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 143
    assert "terminated" in err and "Traceback" not in err
    assert not (dest.parent / "main.lock").exists()
    assert inc.stat().st_size > 100_000


def test_publish_replaces_an_empty_or_markerless_directory(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = b"new"
    for i, leftover in enumerate(({}, {"stale.bin": b"old"})):
        dest = tmp_path / str(i) / "main"
        dest.mkdir(parents=True)  # e.g. a kubelet-created subPath
        for name, data in leftover.items():
            (dest / name).write_bytes(data)
        r = run_download(dl_env, origin.url + "/w.bin", dest)
        assert r.returncode == 0, r.stderr
        assert model_files(dest) == {"w.bin": b"new"}
        assert sorted(p.name for p in dest.parent.iterdir()) == ["main"]


def test_readers_never_see_a_partial_model(origin: Origin, dl_env, tmp_path: Path) -> None:
    files = _model(30)
    origin.repos["org/m"] = HubRepo("e" * 40, files, lfs={"big.safetensors"})
    origin.throttle = 0.002
    env = dict(dl_env, HF_ENDPOINT=origin.url)
    dest = tmp_path / "m" / "main"
    p = start_download(env, "hf://org/m", dest)
    seen = []
    while p.poll() is None:
        if dest.exists():
            seen.append(set(tree(dest)))
        time.sleep(0.005)
    assert p.returncode == 0
    complete = set(files) | {".model-cache.json"}
    assert all(s == complete for s in seen)  # whenever DIR exists it is whole, marker included


def test_kill_between_marker_and_rename_is_finished_without_refetching(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = os.urandom(200_000)
    dest = tmp_path / "m" / "main"
    assert run_download(dl_env, origin.url + "/w.bin", dest).returncode == 0
    # Put the published model back as its holder left it just before the rename.
    os.rename(dest, dest.parent / "main.partial")
    origin.reset_counts()
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert "finishing its publish" in r.stdout
    assert origin.gets["/w.bin"] == 0
    assert (dest / "w.bin").read_bytes() == origin.files["/w.bin"]


def test_waiter_takes_over_when_the_holder_is_killed(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(1_000_000)
    origin.files["/w.bin"] = data
    gate = origin.gates["/w.bin"] = threading.Event()
    env = dict(dl_env, MODEL_CACHE_STALE_SECONDS="600")  # only the dead-pid rule can let it in quickly
    dest = tmp_path / "m" / "main"
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    holder = start_download(env, origin.url + "/w.bin", dest)
    _wait_for(lambda: inc.exists() and inc.stat().st_size >= 500_000, what="the holder half-way")
    log = tmp_path / "waiter.log"
    with open(log, "w") as out:
        waiter = subprocess.Popen(download_cmd(origin.url + "/w.bin", dest), env=env, stdout=out, stderr=out, text=True)
        _wait_for(lambda: "waiting for" in log.read_text(), what="the waiter waiting")
        holder.kill()
        holder.wait()
        del origin.gates["/w.bin"]
        gate.set()
        assert waiter.wait(timeout=60) == 0, log.read_text()
    assert "which is gone; taking over" in log.read_text()
    assert (dest / "w.bin").read_bytes() == data
    ranges = [rng for (m, p, rng, _h) in origin.log if m == "GET" and p == "/w.bin"]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")  # resumed


def test_holder_whose_lock_was_taken_exits_8_without_publishing(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.files["/w.bin"] = os.urandom(1_000_000)
    gate = origin.gates["/w.bin"] = threading.Event()
    dest = tmp_path / "m" / "main"
    inc = dest.parent / "main.partial" / ".model-cache-tmp" / "incomplete" / "w.bin"
    holder = start_download(dl_env, origin.url + "/w.bin", dest)
    _wait_for(lambda: inc.exists() and inc.stat().st_size >= 500_000, what="the holder half-way")
    # Another node judged it dead and took the lock over.
    lock = dest.parent / "main.lock"
    lock.unlink()
    lock.write_text(json.dumps({"token": "someone-else", "pid": 1, "host": "node-b"}))
    gate.set()
    _out, err = holder.communicate(timeout=60)
    assert holder.returncode == 8, err
    assert "taken over by another downloader" in err
    assert not dest.exists()
    assert json.loads(lock.read_text())["token"] == "someone-else"  # not released: not ours
