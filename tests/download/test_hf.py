"""hf:// through the real huggingface_hub client, pointed by HF_ENDPOINT at a
local server answering the Hub endpoints it calls."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.download.support import model_files, run_download
from tests.download.origin import HubRepo, Origin, git_blob_sha1

COMMIT = "0e9e39f249a16976918f6564b8830bc894c89659"


@pytest.fixture
def hub(origin: Origin) -> Origin:
    origin.repos["meta/llama"] = HubRepo(COMMIT, {
        "config.json": b'{"model_type": "llama"}',
        "tokenizer.json": b'{"v": 1}',
        "model-00001.safetensors": os.urandom(400_000),
        "model-00002.safetensors": os.urandom(300_000),
        "original/consolidated.pth": os.urandom(100_000),
        "README.md": b"# llama",
    }, lfs={"model-00001.safetensors", "model-00002.safetensors", "original/consolidated.pth"},
        revisions=("main", "v1"))
    return origin


@pytest.fixture
def env(dl_env, hub: Origin) -> dict[str, str]:
    return dict(dl_env, HF_ENDPOINT=hub.url)


def test_revision_include_and_marker(hub: Origin, env, tmp_path: Path) -> None:
    dest = tmp_path / "llama" / "v1"
    r = run_download(env, "hf://meta/llama", dest, "--revision", "v1",
                     "--include", "*.safetensors", "*.json", "tokenizer*")
    assert r.returncode == 0, r.stderr
    files = hub.repos["meta/llama"].files
    want = {k: v for k, v in files.items() if k.endswith((".safetensors", ".json"))}
    assert model_files(dest) == want
    marker = json.loads((dest / ".model-cache.json").read_text())
    assert marker["revision"] == "v1" and marker["resolved_revision"] == COMMIT
    by_path = {f["path"]: f for f in marker["files"]}
    assert by_path["model-00001.safetensors"] == {
        "path": "model-00001.safetensors", "size": len(files["model-00001.safetensors"]), "verified": "sha256",
        "checksum": hashlib.sha256(files["model-00001.safetensors"]).hexdigest(), "checksum_source": "Hub LFS"}
    blob = git_blob_sha1(files["config.json"])
    assert by_path["config.json"] == {"path": "config.json", "size": len(files["config.json"]), "verified": "git-blob-sha1",
                                      "checksum": blob, "checksum_source": "Hub git blob id", "etag": blob}
    assert "verified: 2 by git-blob-sha1 (Hub git blob id); 2 by sha256 (Hub LFS)" in r.stdout
    # Files are fetched by commit, never by a moving branch name.
    assert all(f"/resolve/{COMMIT}/" in path for (m, path, _r, _h) in hub.log if "/resolve/" in path)


def test_corrupted_lfs_file_is_detected(hub: Origin, env, tmp_path: Path) -> None:
    path = f"/meta/llama/resolve/{COMMIT}/model-00001.safetensors"
    hub.corrupt_gets[path] = 5  # the CDN keeps serving a flipped byte: same size, other content
    r = run_download(env, "hf://meta/llama", tmp_path / "llama" / "main")
    assert r.returncode == 6, r.stdout + r.stderr
    assert "model-00001.safetensors: checksum is" in r.stderr
    assert hub.gets[path] == 2  # once more, then fail
    assert not (tmp_path / "llama" / "main").exists()


def test_corrupted_small_file_is_detected_by_its_git_blob_id(hub: Origin, env, tmp_path: Path) -> None:
    path = f"/meta/llama/resolve/{COMMIT}/config.json"
    hub.corrupt_gets[path] = 1
    r = run_download(env, "hf://meta/llama", tmp_path / "llama" / "main")
    assert r.returncode == 0, r.stderr
    assert "config.json: checksum mismatch" in r.stdout
    assert (tmp_path / "llama" / "main" / "config.json").read_bytes() == hub.repos["meta/llama"].files["config.json"]


def test_private_repo_without_token_names_the_secret(hub: Origin, env, tmp_path: Path) -> None:
    hub.repos["meta/llama"].private = True
    hub.token = "hf_secret"
    r = run_download(dict(env, MODEL_CACHE_AUTH_SECRET="hf-token"), "hf://meta/llama", tmp_path / "l" / "main")
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("model-cache: hf://meta/llama: HTTP 401")
    assert "no HF_TOKEN was set; set HF_TOKEN in Secret hf-token" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1

    r = run_download(dict(env, HF_TOKEN="hf_secret"), "hf://meta/llama", tmp_path / "l2" / "main")
    assert r.returncode == 0, r.stderr
    assert "hf_secret" not in r.stdout + r.stderr
    resolves = [h for (m, path, _r, h) in hub.log if "/resolve/" in path]
    assert resolves and all({k.lower(): v for k, v in h.items()}.get("authorization") == "Bearer hf_secret"
                            for h in resolves)


def test_missing_repo_and_revision_are_named(hub: Origin, env, tmp_path: Path) -> None:
    r = run_download(dict(env, HF_TOKEN="hf_x"), "hf://meta/nope", tmp_path / "a" / "main")
    assert r.returncode == 3  # the Hub answers 401 for a missing repo, as for a private one
    assert "hf://meta/nope" in r.stderr and "not found or private" in r.stderr

    r = run_download(env, "hf://meta/llama", tmp_path / "b" / "v9", "--revision", "v9")
    assert r.returncode == 4, r.stderr
    assert "revision 'v9' not found" in r.stderr


def test_include_matching_nothing_is_not_found(hub: Origin, env, tmp_path: Path) -> None:
    r = run_download(env, "hf://meta/llama", tmp_path / "a" / "main", "--include", "*.gguf")
    assert r.returncode == 4
    assert "no file matches --include *.gguf" in r.stderr


def test_a_small_file_corrupted_twice_fails_on_its_git_blob_id(hub: Origin, env, tmp_path: Path) -> None:
    path = f"/meta/llama/resolve/{COMMIT}/config.json"
    hub.corrupt_gets[path] = 2
    r = run_download(env, "hf://meta/llama", tmp_path / "llama" / "main")
    assert r.returncode == 6, r.stdout + r.stderr
    blob = git_blob_sha1(hub.repos["meta/llama"].files["config.json"])
    assert f"config.json: checksum is " in r.stderr and f"expected {blob} (fetched twice)" in r.stderr
    assert not (tmp_path / "llama" / "main").exists()


def test_a_corrupted_part_of_a_large_lfs_file_is_caught(origin: Origin, dl_env, tmp_path: Path) -> None:
    # Parts are hashed in order as the file fills (parted.py): a flipped byte
    # at the start of one part makes the whole file's sha256 wrong.
    data = os.urandom(70 << 20)
    origin.repos["org/big"] = HubRepo(commit="c" * 40, files={"model.safetensors": data}, lfs={"model.safetensors"})
    path = f"/org/big/resolve/{'c' * 40}/model.safetensors"
    origin.corrupt_gets[path] = 1
    dest = tmp_path / "m" / "main"
    r = run_download(dict(dl_env, HF_ENDPOINT=origin.url), "hf://org/big", dest)
    assert r.returncode == 0, r.stderr
    assert "model.safetensors: checksum mismatch" in r.stdout
    assert sum(1 for (m, p, rng, _h) in origin.log if m == "GET" and p == path and rng) > 1  # fetched in parts
    assert model_files(dest) == {"model.safetensors": data}
