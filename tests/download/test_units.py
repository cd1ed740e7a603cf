"""Pure parts: sizes, progress lines, URIs, globs, lock decisions."""

from __future__ import annotations

import pytest

from webhook.download.errors import UsageError
from webhook.download.volume.lock import Owner, StaleWatch, holder_is_dead
from webhook.download.progress import Progress, Snapshot, format_line
from webhook.download.progress import format_duration
from webhook.download.uri import archive_suffix, matches, parse_source


def test_durations() -> None:
    # Sizes are webhook/quantity.py's (tests/test_quantity.py), the same words as in a pod spec.
    assert format_duration(45) == "45s" and format_duration(185) == "3m05s" and format_duration(7620) == "2h07m"


def test_progress_line() -> None:
    s = Snapshot(done=2 * 1024**3, total=16 * 1024**3, fetched=0, elapsed=10, files_done=3, files_total=12,
                 rate=100e6)
    line = format_line("llama/main", s)
    assert line == "llama/main: 2Gi / 16Gi (12.5%), 3/12 files, 95.3Mi/s, ETA 2m30s"
    assert "ETA" not in format_line("x", Snapshot(5, None, 5, 1, 0, 1, 1e6))


def test_progress_rate_counts_only_fetched_bytes() -> None:
    t = [0.0]
    p = Progress(clock=lambda: t[0])
    p.set_plan(1000, 1)
    p.add(600, fetched=False)  # kept from an earlier run
    t[0] = 1.0
    p.add(100)
    snap = p.snapshot()
    assert snap.done == 700 and snap.fetched == 100 and snap.rate == pytest.approx(100.0)


def test_sources() -> None:
    assert parse_source("hf://meta-llama/Llama-3.1-8B").repo_id == "meta-llama/Llama-3.1-8B"
    ds = parse_source("hf://datasets/org/data")
    assert (ds.repo_type, ds.repo_id) == ("dataset", "org/data")
    s3 = parse_source("s3://models/microsoft/phi-2/")
    assert (s3.bucket, s3.prefix) == ("models", "microsoft/phi-2")
    assert parse_source("file:///models/x").path == "/models/x"
    for bad in ("ftp://x/y", "hf://a/b/c/d", "s3:///x", "file://host/x"):
        with pytest.raises(UsageError):
            parse_source(bad)
    assert archive_suffix("/a/model.TGZ") == ".tgz" and archive_suffix("/a/model.bin") is None


def test_include_globs() -> None:
    assert matches("model-00001.safetensors", ["*.safetensors"])
    assert matches("original/x.pth", ["original/"])
    assert not matches("original/x.pth", ["*.json"])
    assert matches("anything", None)


def _owner(**kw) -> Owner:
    base = dict(token="t", pid=10, host="h", pod="", node="", boot_id="b", pidns="pid:[1]")
    base.update(kw)
    return Owner(**base)


def test_holder_is_dead() -> None:
    me = _owner(token="me", pid=20)
    alive = lambda pid: pid == 10  # noqa: E731
    dead = lambda pid: False  # noqa: E731
    assert not holder_is_dead(_owner(), me, alive)              # same namespace, pid alive: wait
    assert holder_is_dead(_owner(), me, dead)                    # same namespace, pid gone: now
    assert holder_is_dead(_owner(pid=20), me, alive)             # our own pid, another token: a dead predecessor
    assert not holder_is_dead(_owner(host="other"), me, dead)    # another host: only the heartbeat tells
    assert not holder_is_dead(_owner(boot_id="old"), me, dead)   # before a reboot pids mean nothing
    # An earlier instance of this pod's init container (new pid namespace after a restart).
    me_pod = _owner(token="me", pod="web-0", pidns="pid:[2]")
    assert holder_is_dead(_owner(pod="web-0"), me_pod, alive)
    assert not holder_is_dead(_owner(pod="web-1"), me_pod, alive)


def test_stale_watch_uses_only_the_observers_clock() -> None:
    t = [0.0]
    w = StaleWatch(10, clock=lambda: t[0])
    assert not w.observe(("a", 1))
    t[0] = 9
    assert not w.observe(("a", 1))
    t[0] = 12
    assert not w.observe(("a", 2))  # a heartbeat: start again
    t[0] = 21
    assert not w.observe(("a", 2))
    t[0] = 22.5
    assert w.observe(("a", 2))


def test_hash_pipe_matches_hashlib() -> None:
    import hashlib
    import os

    from webhook.download.verify.hashing import HashPipe

    data = [os.urandom(100_000) for _ in range(30)]
    pipe = HashPipe(hashlib.sha256())
    for d in data:
        pipe.update(d)
    assert pipe.hexdigest() == hashlib.sha256(b"".join(data)).hexdigest()
    pipe.close()  # idempotent


def test_fetcher_restarts_a_large_file_when_the_origin_ignores_the_offset(tmp_path) -> None:
    """In process, with a scripted source (our own protocol, no client involved):
    a 200 to a resume must truncate, re-hash and start over."""
    import hashlib
    import os

    from webhook.download.verify.checks import Check
    from webhook.download.fetching.stream import Fetcher
    from webhook.download.verify.hashing import PIPE_HASH_ABOVE
    from webhook.download.remote import Body, FetchOptions, RemoteFile
    from webhook.download.fetching.transfer import Transfer

    data = os.urandom(PIPE_HASH_ABOVE + 3_000_000)  # big enough for the hashing thread
    calls = []

    class Scripted:
        label = "scripted"

        def open(self, f, offset, validator):
            calls.append(offset)
            chunks = (data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20))
            return Body(chunks, restarted=offset > 0)

    f = RemoteFile("w.bin", len(data), check=Check("sha256", hashlib.sha256(data).hexdigest(), "policy"))
    inc = tmp_path / ".model-cache-tmp" / "incomplete" / "w.bin"
    inc.parent.mkdir(parents=True)
    inc.write_bytes(b"\0" * 5_000_000)  # garbage from an earlier run
    rec = Fetcher(Transfer(Scripted(), tmp_path, Progress(), FetchOptions(jobs=1))).fetch(f)
    assert calls == [5_000_000]
    assert (tmp_path / "w.bin").read_bytes() == data
    assert rec.check == f.check and not inc.exists()


def test_proxies_follow_the_environment_once_per_origin(monkeypatch) -> None:
    from webhook.download.sources import http_common as hc

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.svc")
    hc.proxies_for_origin.cache_clear()
    try:
        assert hc.proxies("http://127.0.0.1:8080/a") == {}
        assert hc.proxies("http://models.example.com/a.bin").get("http") == "http://proxy.internal:3128"
        assert hc.safe_url("https://user:pw@h.example.com:8443/p/a.bin?X-Amz-Signature=s") == "https://h.example.com:8443/p/a.bin"
    finally:
        hc.proxies_for_origin.cache_clear()
