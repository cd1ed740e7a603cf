"""A digest that never matches stops costing downloads: after two full
fetches end in a mismatch, the downloader records what it saw beside the
partial directory, and a restart against the same bytes (same source,
validator and expected digest) fails at once, fetching nothing, until the
policy's digest or the origin's file changes. Against the local origin,
which counts every body byte it sends."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.download.origin import Origin
from tests.download.support import model_files, run_download

WRONG = "0" * 64


def test_a_wrong_policy_sha256_costs_two_fetches_then_none(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    origin.files["/w.bin"] = data
    computed = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "m" / "main"

    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", WRONG)
    assert r.returncode == 6, r.stderr
    assert origin.served["/w.bin"] == 2 * len(data)
    assert f"checksum is {computed}, expected {WRONG} (fetched twice)" in r.stderr
    assert "from the policy's sha256" in r.stderr and f"set the model's sha256 in the policy to {computed}" in r.stderr
    record = json.loads((tmp_path / "m" / "main.digest-mismatch").read_text())
    assert (record["source"], record["computed"], record["expected"], record["validator"]) == (
        origin.url + "/w.bin", computed, WRONG, f'ETag "{hashlib.md5(data).hexdigest()}"')

    for _ in range(3):  # every restart: refused at once, not a byte fetched
        r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", WRONG)
        assert r.returncode == 11, r.stderr
        assert f"checksum is {computed}, expected {WRONG} (fetched twice)" in r.stderr
        assert "not fetched again" in r.stderr and "until the policy's sha256 or the origin's file" in r.stderr
    assert origin.served["/w.bin"] == 2 * len(data)

    # The policy's digest is fixed: fetched once, published, the record gone.
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", computed)
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"w.bin": data}
    assert origin.served["/w.bin"] == 3 * len(data)
    assert not (tmp_path / "m" / "main.digest-mismatch").exists()


def test_a_new_file_on_the_origin_is_fetched_again(origin: Origin, dl_env, tmp_path: Path) -> None:
    good = os.urandom(200_000)
    origin.files["/w.bin"] = os.urandom(200_000)  # not the bytes the policy's sha256 names
    dest = tmp_path / "m" / "main"
    sha = hashlib.sha256(good).hexdigest()
    assert run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", sha).returncode == 6
    assert run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", sha).returncode == 11

    origin.files["/w.bin"] = good  # fixed on the origin: another ETag
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", sha)
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"w.bin": good}


def test_without_a_validator_the_record_holds_and_says_how_to_retry(origin: Origin, dl_env, tmp_path: Path) -> None:
    origin.no_validator = True
    data = os.urandom(100_000)
    origin.files["/w.bin"] = data
    dest = tmp_path / "m" / "main"
    assert run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", WRONG).returncode == 6
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", WRONG)
    assert r.returncode == 11, r.stderr
    assert "gives no ETag or Last-Modified" in r.stderr and "delete the record" in r.stderr
    assert origin.served["/w.bin"] == 2 * len(data)


def test_a_corrupting_origin_with_its_own_digest_header(origin: Origin, dl_env, tmp_path: Path) -> None:
    import base64

    data = os.urandom(100_000)
    origin.files["/w.bin"] = data
    digest = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    origin.extra_headers["/w.bin"] = {"Repr-Digest": f"sha-256=:{digest}:"}
    dest = tmp_path / "m" / "main"
    assert run_download(dl_env, origin.url + "/w.bin", dest).returncode == 6
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 11, r.stderr
    assert "from the origin's Repr-Digest" in r.stderr and "fix the file (or that value) on the origin" in r.stderr


def test_hf_a_corrupting_mirror_is_refused_until_the_branch_moves(origin: Origin, dl_env, tmp_path: Path) -> None:
    from tests.download.origin import HubRepo

    first, second = "1" * 40, "2" * 40
    origin.repos["meta/llama"] = HubRepo(first, {"config.json": b'{"model_type": "llama"}'})
    resolve = f"/meta/llama/resolve/{first}/config.json"
    origin.corrupt_gets[resolve] = 100  # every GET
    env = dict(dl_env, HF_ENDPOINT=origin.url)
    dest = tmp_path / "llama" / "main"
    assert run_download(env, "hf://meta/llama", dest).returncode == 6
    gets = origin.gets[resolve]
    r = run_download(env, "hf://meta/llama", dest)
    assert r.returncode == 11, r.stderr
    assert "from the origin's Hub git blob id" in r.stderr and f"(commit {first}) changes" in r.stderr
    assert origin.gets[resolve] == gets, "the refusal fetched something"

    origin.repos["meta/llama"] = HubRepo(second, {"config.json": b'{"model_type": "llama"}'})  # main moved
    r = run_download(env, "hf://meta/llama", dest)
    assert r.returncode == 0, r.stderr
