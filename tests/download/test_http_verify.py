"""What an http(s) file is verified against: the policy's sha256, else the
origin's Repr-Digest (RFC 9530) or Digest (RFC 3230) header, else its size
only; and a ranged answer must start where it was asked to. Against the
local origin (origin.py), which can send right or wrong digests, flip bytes,
cut a body and serve a range from the wrong offset."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.download.origin import SHIFT, Origin
from tests.download.support import model_files, run_download


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _marker_entry(dest: Path) -> dict:
    return json.loads((dest / ".model-cache.json").read_text())["files"][0]


HEADERS = {
    "repr-digest-sha256": ({"Repr-Digest": "sha-256=:{sha256}:"}, "sha256", "Repr-Digest"),
    # sha-512 is the only one this origin names usefully; md5 is ignored
    "repr-digest-sha512": ({"Repr-Digest": "md5=:AAAA:, sha-512=:{sha512}:"}, "sha512", "Repr-Digest"),
    "digest-rfc3230": ({"Digest": "MD5=AAAA,SHA-256={sha256}"}, "sha256", "Digest"),
}


@pytest.mark.parametrize("kind", list(HEADERS))
def test_the_origins_digest_header_is_checked(kind: str, origin: Origin, dl_env, tmp_path: Path) -> None:
    headers, algorithm, source = HEADERS[kind]
    data = os.urandom(400_000)
    values = {"sha256": _b64(hashlib.sha256(data).digest()), "sha512": _b64(hashlib.sha512(data).digest())}
    origin.files["/w.bin"] = data
    origin.extra_headers["/w.bin"] = {k: v.format(**values) for k, v in headers.items()}
    expected = hashlib.new(algorithm, data).hexdigest()

    origin.corrupt_gets["/w.bin"] = 1  # caught, fetched once more
    dest = tmp_path / "once" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert "w.bin: checksum mismatch" in r.stdout + r.stderr
    assert model_files(dest) == {"w.bin": data}
    assert _marker_entry(dest) == {"path": "w.bin", "size": len(data), "verified": algorithm, "checksum": expected,
                                   "checksum_source": source}
    assert f"verified: 1 by {algorithm} ({source})" in r.stdout

    origin.corrupt_gets["/w.bin"] = 2
    dest = tmp_path / "twice" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 6, r.stderr
    assert f"expected {expected} (fetched twice)" in r.stderr
    assert not dest.exists()


def test_a_wrong_digest_header_fails_and_the_policy_sha256_comes_first(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    origin.files["/w.bin"] = data
    origin.extra_headers["/w.bin"] = {"Repr-Digest": f"sha-256=:{_b64(hashlib.sha256(b'other').digest())}:"}
    r = run_download(dl_env, origin.url + "/w.bin", tmp_path / "a" / "main")
    assert r.returncode == 6, r.stderr
    assert f"expected {hashlib.sha256(b'other').hexdigest()} (fetched twice)" in r.stderr

    dest = tmp_path / "b" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest, "--sha256", hashlib.sha256(data).hexdigest())
    assert r.returncode == 0, r.stderr
    assert _marker_entry(dest)["checksum_source"] == "policy"


def test_no_checksum_says_size_only(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    origin.files["/w.bin"] = data
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stderr
    assert _marker_entry(dest) == {"path": "w.bin", "size": len(data), "verified": "size only"}
    assert "verified: 1 by size only (no checksum from the origin that can be checked): w.bin" in r.stdout


def test_a_ranged_answer_that_starts_elsewhere_is_refused(origin: Origin, dl_env, tmp_path: Path) -> None:
    data = os.urandom(600_000)
    origin.files["/w.bin"] = data
    origin.cut_gets["/w.bin"] = 1      # the first GET stops half-way: resumed with a Range
    origin.shift_ranges["/w.bin"] = 1  # whose answer starts SHIFT bytes later (its Content-Range says so)
    dest = tmp_path / "m" / "main"
    r = run_download(dl_env, origin.url + "/w.bin", dest)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"Content-Range 'bytes {300_000 + SHIFT}-599999/600000' does not start at 300000" in out
    assert model_files(dest) == {"w.bin": data}  # size only: only the Content-Range check kept this whole
    ranges = [rng for (method, path, rng, _h) in origin.log if method == "GET" and path == "/w.bin" and rng]
    assert ranges == ["bytes=300000-", "bytes=300000-"]
