"""What an s3:// object is verified against, through the real boto3 against
moto's S3 server, and a misbehaving endpoint in front of it (s3front.py)
that flips bytes, cuts bodies and serves ranges from the wrong offset."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
import zlib
from pathlib import Path
from typing import Callable

import pytest

from tests.download.s3front import S3Front
from tests.download.support import model_files, run_download

MiB = 1 << 20
PART = 5 * MiB  # S3's (and moto's) smallest part but the last


@pytest.fixture
def bucket(s3) -> str:
    name = f"verify-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def front_env(s3_env, s3front: S3Front) -> dict[str, str]:
    return dict(s3_env, AWS_ENDPOINT_URL=s3front.url, MODEL_CACHE_S3_ADDRESSING_STYLE="path")


def _multipart(client, bucket: str, key: str, data: bytes, sizes: list[int], **kw) -> None:
    algorithm = kw.get("ChecksumAlgorithm")
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, **kw)
    parts, pos = [], 0
    for n, size in enumerate(sizes, 1):
        r = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                               Body=data[pos:pos + size], **({"ChecksumAlgorithm": algorithm} if algorithm else {}))
        parts.append({"PartNumber": n, "ETag": r["ETag"],
                      **{k: v for k, v in r.items() if k.startswith("Checksum") and k != "ChecksumType"}})
        pos += size
    assert pos == len(data)
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts},
                                     **({"ChecksumType": kw["ChecksumType"]} if "ChecksumType" in kw else {}))


def _md5_of_parts(data: bytes, size: int) -> str:
    md5s = b"".join(hashlib.md5(data[i:i + size]).digest() for i in range(0, len(data), size))
    return f"{hashlib.md5(md5s).hexdigest()}-{-(-len(data) // size)}"


def _has_crt() -> bool:
    from botocore.compat import HAS_CRT

    return bool(HAS_CRT)


def _crt(name: str) -> Callable[[bytes], str]:
    def digest(data: bytes) -> str:
        from awscrt import checksums

        if name == "crc64nvme":
            return checksums.crc64nvme(data).to_bytes(8, "big").hex()
        return checksums.crc32c(data).to_bytes(4, "big").hex()

    return digest


# kind -> (how the object is put, its size, the marker's verified/checksum_source, the expected value)
Put = Callable[..., None]
KINDS: dict[str, tuple[Put, int, str, str, Callable[[bytes], str], dict]] = {
    # botocore adds a CRC32 to every upload by default: the common case
    "crc32": (lambda s3, plain, b, k, d: s3.put_object(Bucket=b, Key=k, Body=d), 300_000,
              "crc32", "S3 ChecksumCRC32", lambda d: zlib.crc32(d).to_bytes(4, "big").hex(), {}),
    "sha256": (lambda s3, plain, b, k, d: s3.put_object(Bucket=b, Key=k, Body=d, ChecksumAlgorithm="SHA256"), 300_000,
               "sha256", "S3 ChecksumSHA256", lambda d: hashlib.sha256(d).hexdigest(), {}),
    "sha1": (lambda s3, plain, b, k, d: s3.put_object(Bucket=b, Key=k, Body=d, ChecksumAlgorithm="SHA1"), 300_000,
             "sha1", "S3 ChecksumSHA1", lambda d: hashlib.sha1(d).hexdigest(), {}),
    "etag-md5": (lambda s3, plain, b, k, d: plain.put_object(Bucket=b, Key=k, Body=d), 300_000,
                 "md5", "S3 ETag", lambda d: hashlib.md5(d).hexdigest(), {}),
    "multipart-etag": (lambda s3, plain, b, k, d: _multipart(plain, b, k, d, [PART, PART, 100]), 2 * PART + 100,
                       "md5", "S3 multipart ETag", lambda d: _md5_of_parts(d, PART), {"checksum_part_size": PART}),
    "multipart-full-object-crc32": (
        lambda s3, plain, b, k, d: _multipart(s3, b, k, d, [PART, PART, 100], ChecksumAlgorithm="CRC32",
                                              ChecksumType="FULL_OBJECT"), 2 * PART + 100,
        "crc32", "S3 ChecksumCRC32", lambda d: zlib.crc32(d).to_bytes(4, "big").hex(), {}),
    "crc64nvme": (lambda s3, plain, b, k, d: s3.put_object(Bucket=b, Key=k, Body=d, ChecksumAlgorithm="CRC64NVME"),
                  300_000, "crc64nvme", "S3 ChecksumCRC64NVME", _crt("crc64nvme"), {}),
}
NEEDS_CRT = {"crc64nvme"}


def _kinds() -> list:
    return [pytest.param(k, marks=pytest.mark.skipif(k in NEEDS_CRT and not _has_crt(),
                                                     reason="CRC64NVME needs awscrt (botocore[crt])"))
            for k in KINDS]


@pytest.mark.parametrize("kind", _kinds())
def test_each_kind_of_object_is_verified_and_a_flipped_byte_caught(kind: str, s3, s3_plain, bucket: str, front_env,
                                                                   s3front: S3Front, tmp_path: Path) -> None:
    put, size, algorithm, source, expected, extra = KINDS[kind]
    data = os.urandom(size)
    put(s3, s3_plain, bucket, "m/model.bin", data)
    path = f"/{bucket}/m/model.bin"

    s3front.corrupt_gets[path] = 1  # the first GET flips a byte: caught, fetched once more
    dest = tmp_path / "once" / "main"
    r = run_download(front_env, f"s3://{bucket}/m", dest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "model.bin: checksum mismatch" in r.stdout + r.stderr
    assert model_files(dest) == {"model.bin": data}
    marker = json.loads((dest / ".model-cache.json").read_text())
    entry = marker["files"][0]
    assert {k: entry.get(k) for k in ("verified", "checksum", "checksum_source")} == {
        "verified": algorithm, "checksum": expected(data), "checksum_source": source}
    assert {k: entry[k] for k in extra} == extra
    assert f"verified: 1 by {algorithm} ({source})" in r.stdout

    s3front.corrupt_gets[path] = 2  # every GET flips a byte: fails, nothing published
    dest = tmp_path / "twice" / "main"
    r = run_download(front_env, f"s3://{bucket}/m", dest)
    assert r.returncode == 6, r.stdout + r.stderr
    assert f"model.bin: checksum is " in r.stderr and f"expected {expected(data)} (fetched twice)" in r.stderr
    assert not dest.exists()


def test_multipart_part_size_comes_from_parts_1_and_n(s3_plain, bucket: str, front_env, s3front: S3Front,
                                                      tmp_path: Path) -> None:
    data = os.urandom(3 * PART + 7)
    _multipart(s3_plain, bucket, "m/w.bin", data, [PART, PART, PART, 7])
    r = run_download(front_env, f"s3://{bucket}/m", tmp_path / "m" / "main")
    assert r.returncode == 0, r.stderr
    heads = sorted(q.split("?", 1)[1] for (method, q, _r) in s3front.requests if method == "HEAD" and "?" in q)
    assert heads == ["partNumber=1", "partNumber=4"]


SIZE_ONLY: dict[str, Callable] = {
    # Under SSE-KMS the ETag is no MD5 of the data, and there is no checksum.
    "sse-kms": lambda s3, plain, b, k, d: plain.put_object(Bucket=b, Key=k, Body=d, ServerSideEncryption="aws:kms"),
    # Parts of unequal size: the part size cannot be derived from parts 1 and N.
    "unequal-parts": lambda s3, plain, b, k, d: _multipart(plain, b, k, d, [PART + MiB, PART, len(d) - 2 * PART - MiB]),
}


@pytest.mark.parametrize("kind", list(SIZE_ONLY))
def test_nothing_to_check_says_size_only(kind: str, s3, s3_plain, bucket: str, s3_env, tmp_path: Path) -> None:
    data = os.urandom(2 * PART + MiB + 100)
    SIZE_ONLY[kind](s3, s3_plain, bucket, "m/w.bin", data)
    s3_plain.put_object(Bucket=bucket, Key="m/config.json", Body=b"{}")
    dest = tmp_path / "m" / "main"
    r = run_download(s3_env, f"s3://{bucket}/m", dest)
    assert r.returncode == 0, r.stderr
    assert model_files(dest) == {"w.bin": data, "config.json": b"{}"}
    by_path = {f["path"]: f for f in json.loads((dest / ".model-cache.json").read_text())["files"]}
    assert by_path["w.bin"]["verified"] == "size only" and "checksum" not in by_path["w.bin"]
    assert by_path["config.json"]["verified"] == "md5"
    assert ("verified: 1 by md5 (S3 ETag); 1 by size only (no checksum from the origin that can be checked): w.bin"
            in r.stdout)


def test_a_ranged_read_that_starts_elsewhere_is_refused(s3, bucket: str, front_env, s3front: S3Front,
                                                        tmp_path: Path) -> None:
    data = os.urandom(600_000)
    s3.put_object(Bucket=bucket, Key="m/w.bin", Body=data)
    path = f"/{bucket}/m/w.bin"
    s3front.cut_gets[path] = 1       # the first GET stops half-way: the download resumes with a Range
    s3front.shift_ranges[path] = 1   # whose answer starts 1 KiB later than asked (its Content-Range says so)
    dest = tmp_path / "m" / "main"
    r = run_download(front_env, f"s3://{bucket}/m", dest)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "does not start at 300000" in out
    assert "checksum mismatch" not in out  # refused before a byte was written at the wrong offset
    assert model_files(dest) == {"w.bin": data}
    ranges = [rng for (method, _q, rng) in s3front.requests if method == "GET" and rng]
    assert ranges == ["bytes=300000-", "bytes=300000-"]


def test_the_rules_for_a_head_response() -> None:
    from webhook.download.sources import s3_checks

    crc = base64.b64encode(zlib.crc32(b"x").to_bytes(4, "big")).decode()
    md5 = hashlib.md5(b"x").hexdigest()
    single = {"ETag": f'"{md5}"', "ContentLength": 1}
    assert s3_checks.full_object_check({**single, "ChecksumCRC32": crc}).algorithm == "crc32"
    # A multipart upload's checksum of no stated type may be COMPOSITE (moto's HEAD says nothing): not used.
    assert s3_checks.full_object_check({"ETag": f'"{md5}-2"', "ChecksumCRC32": crc}) is None
    assert s3_checks.full_object_check({"ETag": f'"{md5}-2"', "ChecksumCRC32": crc,
                                        "ChecksumType": "FULL_OBJECT"}).algorithm == "crc32"
    assert s3_checks.full_object_check({**single, "ChecksumCRC32": crc + "-2", "ChecksumType": "COMPOSITE"}) is None
    assert s3_checks.full_object_check({**single, "ChecksumCRC32": "not base64!"}) is None
    assert s3_checks.single_part_check(single).value == md5
    assert s3_checks.single_part_check({**single, "ServerSideEncryption": "AES256"}) is not None
    assert s3_checks.single_part_check({**single, "ServerSideEncryption": "aws:kms"}) is None
    assert s3_checks.single_part_check({**single, "SSECustomerAlgorithm": "AES256"}) is None
    assert s3_checks.single_part_check({"ETag": '"not-an-md5"'}) is None
    assert s3_checks.part_size(3 * PART + 7, 4, PART, 7) == PART
    assert s3_checks.part_size(2 * PART, 2, PART, PART) == PART
    assert s3_checks.part_size(PART, 1, PART, PART) == PART
    assert s3_checks.part_size(3 * PART, 3, PART + MiB, PART - 2) is None  # unequal parts
    assert s3_checks.part_size(2 * PART + 1, 2, PART, PART + 1) is None  # a last part larger than the first


def test_every_read_is_of_the_object_the_check_came_from(s3, bucket: str, s3_env, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A whole-object GET carries If-Match too: an object replaced after the
    # plan's HEAD is refused, not checked against the old object's checksum.
    from webhook.download.errors import ChangedError
    from webhook.download.sources.s3 import S3Source
    from webhook.download.uri import parse_source

    s3.put_object(Bucket=bucket, Key="m/w.bin", Body=b"old" * 1000)
    for k, v in s3_env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    src = S3Source(parse_source(f"s3://{bucket}/m"), include=None, stall=10, jobs=2)
    f = src.listing().files[0]
    assert f.check is not None and f.check.algorithm == "crc32"
    s3.put_object(Bucket=bucket, Key="m/w.bin", Body=b"new" * 1000)
    with pytest.raises(ChangedError, match="changed on the origin since it was listed"):
        src.open(f, 0, None)
