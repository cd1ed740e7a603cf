"""s3:// through the real boto3 against moto's S3 server on loopback."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.download.support import model_files, run_download, start_download


@pytest.fixture
def bucket(s3) -> str:
    name = f"models-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def _put(s3, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_prefix_is_a_folder_not_a_string_prefix(s3, bucket: str, s3_env, tmp_path: Path) -> None:
    big = os.urandom(1_200_000)
    _put(s3, bucket, {
        "microsoft/phi-2/config.json": b"{}",
        "microsoft/phi-2/weights/model.safetensors": big,
        "microsoft/phi-2/": b"",  # a folder marker, as consoles create them
        "microsoft/phi-2-old/model.safetensors": b"old",  # a sibling that shares the characters
        "microsoft/phi-2.md": b"readme",
    })
    for uri in (f"s3://{bucket}/microsoft/phi-2", f"s3://{bucket}/microsoft/phi-2/"):
        dest = tmp_path / uri.rstrip("/")[-5:] / str(uri.endswith("/")) / "main"
        r = run_download(s3_env, uri, dest)
        assert r.returncode == 0, r.stderr
        assert model_files(dest) == {"config.json": b"{}", "weights/model.safetensors": big}
        marker = json.loads((dest / ".model-cache.json").read_text())
        assert all(f.get("etag") for f in marker["files"])


def test_include_and_single_object(s3, bucket: str, s3_env, tmp_path: Path) -> None:
    _put(s3, bucket, {"m/a.json": b"a", "m/b.bin": b"b" * 1000, "m/c.txt": b"c", "one/model.gguf": b"gguf"})
    dest = tmp_path / "inc" / "main"
    r = run_download(s3_env, f"s3://{bucket}/m", dest, "--include", "*.json", "*.bin")
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"a.json": b"a", "b.bin": b"b" * 1000}

    dest = tmp_path / "one" / "main"
    r = run_download(s3_env, f"s3://{bucket}/one/model.gguf", dest)
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"model.gguf": b"gguf"}


def test_replicas_race_and_agree(s3, bucket: str, s3_env, tmp_path: Path) -> None:
    objects = {f"m/shard-{i}.bin": os.urandom(50_000) for i in range(12)}
    _put(s3, bucket, objects)
    dest = tmp_path / "m" / "main"
    procs = [start_download(s3_env, f"s3://{bucket}/m", dest) for _ in range(4)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1] for o in outs]
    assert model_files(dest) == {k[2:]: v for k, v in objects.items()}
    assert sum("downloading s3://" in o[0] for o in outs) == 1  # one holder did the work


def test_missing_bucket_and_prefix(s3, bucket: str, s3_env, tmp_path: Path) -> None:
    r = run_download(s3_env, "s3://no-such-bucket-x/m", tmp_path / "a" / "main")
    assert r.returncode == 4, r.stderr
    assert "no such bucket" in r.stderr
    r = run_download(s3_env, f"s3://{bucket}/nothing/here", tmp_path / "b" / "main")
    assert r.returncode == 4, r.stderr
    assert f"s3://{bucket}/nothing/here" in r.stderr


def test_no_credentials_names_the_secret(s3_env, tmp_path: Path) -> None:
    env = {k: v for k, v in s3_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(MODEL_CACHE_AUTH_SECRET="s3-creds", AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"))
    r = run_download(env, "s3://models/m", tmp_path / "a" / "main")
    assert r.returncode == 3, r.stderr
    assert "no AWS credentials found" in r.stderr and "Secret s3-creds" in r.stderr


def test_access_denied_is_an_auth_error() -> None:
    # moto's server does not enforce IAM by default, so the mapping of a real
    # 403 is checked on the error object botocore builds from one.
    import botocore.exceptions

    from webhook.download.errors import AuthError, NotFoundError, TransientError
    from webhook.download.sources.s3 import S3Source
    from webhook.download.uri import parse_source

    src = S3Source.__new__(S3Source)
    src.bucket, src.label = "b", "s3://b/p"

    def err(code: str, status: int) -> Exception:
        return botocore.exceptions.ClientError(
            {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert isinstance(src._translate(err("AccessDenied", 403), "p/k"), AuthError)
    assert isinstance(src._translate(err("InvalidAccessKeyId", 403)), AuthError)
    assert isinstance(src._translate(err("NoSuchKey", 404), "p/k"), NotFoundError)
    assert isinstance(src._translate(err("SlowDown", 503)), TransientError)
    assert parse_source("s3://b/p/").prefix == "p"
