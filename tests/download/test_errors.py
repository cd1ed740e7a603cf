"""Unreachable origins: one line naming the cause and the fix, and each
failure retried by our policy only (botocore's retries are off)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from tests.download.support import run_download
from tests.helpers import free_port
from tests.download.origin import Origin


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def test_connection_refused_names_the_cause_and_the_url(dl_env, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/w.bin"
    r = run_download(dict(dl_env, MODEL_CACHE_RETRIES="1"), url, tmp_path / "m" / "main")
    assert r.returncode == 7, r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert "connection refused" in line and f"check the URL {url}" in line
    assert "Max retries exceeded" not in line and "gave up after 1 retries" in line
    assert "retry 1/1" in r.stdout


def test_proxy_refusing_names_the_proxy_variables(dl_env, tmp_path: Path) -> None:
    origin_port = _closed_port()
    env = dict(dl_env, MODEL_CACHE_RETRIES="0", HTTP_PROXY=f"http://127.0.0.1:{_closed_port()}", NO_PROXY="")
    r = run_download(env, f"http://127.0.0.1:{origin_port}/w.bin", tmp_path / "m" / "main")
    assert r.returncode == 7, r.stderr
    assert "through the proxy" in r.stderr and "HTTPS_PROXY/HTTP_PROXY" in r.stderr and "NO_PROXY" in r.stderr


def test_bad_hf_endpoint_is_named(origin: Origin, dl_env, tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}"
    r = run_download(dict(dl_env, MODEL_CACHE_RETRIES="0", HF_ENDPOINT=refused), "hf://org/model",
                     tmp_path / "a" / "main")
    assert r.returncode == 7, r.stderr
    assert f"check HF_ENDPOINT={refused}" in r.stderr and "connection refused" in r.stderr

    # Something answers there, but not a Hub (a mirror's URL with a wrong path).
    r = run_download(dict(dl_env, HF_ENDPOINT=origin.url + "/not-a-hub"), "hf://org/model", tmp_path / "b" / "main")
    assert r.returncode == 4, r.stderr
    assert "does not answer like a Hugging Face Hub" in r.stderr and "check HF_ENDPOINT" in r.stderr


def test_dns_failure_message() -> None:
    # A real DNS lookup would leave the machine (tests talk to loopback only),
    # so the chain is the one requests raises for a failed getaddrinfo, built
    # from the real exception classes.
    import requests
    import urllib3

    from webhook.download.fetching.network_messages import describe

    conn = urllib3.connection.HTTPConnection("models.example.internal", 443)
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    nre = urllib3.exceptions.NameResolutionError("models.example.internal", conn, gai)
    mre = urllib3.exceptions.MaxRetryError(None, "/w.bin", nre)
    err = requests.exceptions.ConnectionError(mre)
    text = describe(err, "https://models.example.internal/w.bin")
    assert text is not None
    assert text.startswith("cannot resolve host models.example.internal (DNS lookup failed)")
    assert "HTTPS_PROXY" in text
    # botocore keeps only the text of the socket error.
    import botocore.exceptions

    b = botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3.nowhere.internal/b",
                                                    error=socket.gaierror(-2, "Name or service not known"))
    assert "DNS lookup failed" in describe(b, "https://s3.nowhere.internal", "AWS_ENDPOINT_URL")


def test_s3_failures_are_retried_by_our_policy_only(origin: Origin, s3_env, tmp_path: Path) -> None:
    # An S3 endpoint that answers 503 to everything: botocore's own retries
    # would multiply the requests (3 attempts each in standard mode).
    origin.fail_all = 503
    env = dict(s3_env, AWS_ENDPOINT_URL=origin.url, MODEL_CACHE_RETRIES="2", MODEL_CACHE_S3_ADDRESSING_STYLE="path")
    r = run_download(env, "s3://models/m", tmp_path / "m" / "main")
    assert r.returncode == 7, r.stderr
    assert len(origin.log) == 3, [e[:3] for e in origin.log]  # 1 try + 2 retries
    assert "gave up after 2 retries" in r.stderr


def test_s3_refused_names_aws_endpoint_url(s3_env, tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}"
    env = dict(s3_env, AWS_ENDPOINT_URL=refused, MODEL_CACHE_RETRIES="0")
    r = run_download(env, "s3://models/m", tmp_path / "m" / "main")
    assert r.returncode == 7, r.stderr
    assert "connection refused" in r.stderr and f"AWS_ENDPOINT_URL={refused}" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture
def bucket(s3) -> str:
    name = f"models-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def test_s3_large_object_in_parts_and_changed_object(s3, bucket: str, s3_env, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    size = 70 << 20
    data = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="m/model.bin", Body=data)
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=b"{}")
    dest = tmp_path / "m" / "main"
    r = run_download(s3_env, f"s3://{bucket}/m", dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "model.bin").read_bytes() == data and (dest / "config.json").read_bytes() == b"{}"

    # A part request carries If-Match on the listing's ETag: a changed object
    # gives 412 and the file starts over, whole.
    from webhook.download.errors import ChangedError
    from webhook.download.sources.s3 import S3Source
    from webhook.download.uri import parse_source

    for k, v in s3_env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    src = S3Source(parse_source(f"s3://{bucket}/m"), include=None, stall=10, jobs=2)
    f = next(x for x in src.listing().files if x.path == "model.bin")
    s3.put_object(Bucket=bucket, Key="m/model.bin", Body=b"x" * size)
    with pytest.raises(ChangedError):
        src.open(f, 0, None, end=16 << 20)
