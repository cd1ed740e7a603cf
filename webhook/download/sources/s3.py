"""s3://BUCKET/PREFIX: every object under the folder PREFIX/, through boto3.

Endpoint, region and credentials come from the standard environment
(AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...), so S3-compatible
stores work the same. Files are fetched in parallel (one stream per file,
--jobs at once) with ranged GETs, which is what makes a killed download
resumable: each file continues from its length, with If-Match on the ETag
so that a changed object starts over instead of being spliced. Each object
is verified against the checksum its HEAD gives (s3_checks.py), and a
ranged read must start where it was asked to (ranges.py).
"""

from __future__ import annotations

import os
import posixpath

import boto3
import botocore.config
import botocore.exceptions
import urllib3

from webhook.download.verify.checks import Check
from webhook.download.errors import AuthError, ChangedError, DownloadError, NotFoundError, TransientError, secret_hint
from webhook.download.fetching.thread_map import map_parallel
from webhook.download.remote import CHUNK, Body, Listing, RemoteFile
from webhook.download.fetching.retry import with_retries
from webhook.download.sources import s3_checks
from webhook.download.sources.credentials import required_vars_text
from webhook.download.sources.ranges import checked_total
from webhook.download.uri import SourceSpec, matches

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
               "TokenRefreshRequired", "AllAccessDisabled", "401", "403", "Forbidden", "Unauthorized"}
_NOT_FOUND_CODES = {"NoSuchBucket", "NoSuchKey", "404", "NotFound"}
_TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "500", "502", "503", "504",
                    "ThrottlingException", "RequestTimeTooSkewed"}
_TRANSIENT_EXC = (
    botocore.exceptions.HTTPClientError,  # read timeouts, closed connections
    botocore.exceptions.ConnectionError,  # refused, DNS, proxy, connect timeouts
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


class S3Source:
    ranged = True      # large objects are fetched as parallel ranged parts (get_object with Range)
    immutable = False  # parts carry If-Match on the listing's ETag

    def __init__(self, spec: SourceSpec, *, include: list[str] | None, stall: float, jobs: int) -> None:
        self.spec = spec
        self.bucket = spec.bucket
        self.prefix = spec.prefix
        self.include = include
        self.jobs = jobs
        self.label = f"s3://{spec.bucket}/{spec.prefix}"
        cfg = botocore.config.Config(
            connect_timeout=15,
            read_timeout=stall,  # the stall watchdog: no byte for this long raises, and we resume
            # Off: our retry policy (fetching/retry.py) is the only one, so that a
            # failure is not retried 3 x 9 times and Retry-After is honoured.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(jobs, 10),
            s3={"addressing_style": os.environ.get("MODEL_CACHE_S3_ADDRESSING_STYLE", "auto")},
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
        self.client = boto3.session.Session().client("s3", region_name=region, config=cfg)
        self.endpoint = self.client.meta.endpoint_url
        self.endpoint_setting = "AWS_ENDPOINT_URL" if (os.environ.get("AWS_ENDPOINT_URL")
                                                       or os.environ.get("AWS_ENDPOINT_URL_S3")) else None

    def _translate(self, err: Exception, key: str | None = None) -> Exception:
        where = f"s3://{self.bucket}/{key}" if key else self.label
        if isinstance(err, botocore.exceptions.NoCredentialsError):
            return AuthError(f"{where}: no AWS credentials found; {secret_hint(required_vars_text('s3'))}")
        if isinstance(err, botocore.exceptions.ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _AUTH_CODES or status in (401, 403):
                return AuthError(f"{where}: {code or status}: access denied; "
                                 f"{secret_hint(required_vars_text('s3'))}")
            if code in _NOT_FOUND_CODES or status == 404:
                what = "bucket" if code == "NoSuchBucket" else "object"
                return NotFoundError(f"{where}: no such {what} ({code or status}); check the model's source in the policy")
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                from webhook.download.fetching.retry import parse_retry_after

                headers = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                return TransientError(f"{where}: {code or status}",
                                      retry_after=parse_retry_after(headers.get("retry-after")))
            return DownloadError(f"{where}: {code}: {err.response.get('Error', {}).get('Message', '')}")
        if isinstance(err, _TRANSIENT_EXC):
            from webhook.download.fetching.network_messages import describe

            text = describe(err, getattr(self, "endpoint", "") or "", getattr(self, "endpoint_setting", None))
            return TransientError(f"{where}: {text}" if text else f"{where}: {type(err).__name__}: {str(err)[:200]}")
        return err

    def _call(self, fn, what: str, key: str | None = None):
        def once():
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - translated, re-raised
                raise self._translate(err, key) from None

        return with_retries(once, what=what)

    def _list(self) -> list[dict]:
        # The folder PREFIX/, never sibling keys such as PREFIX-old/ that share its characters.
        folder = f"{self.prefix}/" if self.prefix else ""
        out: list[dict] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
        for page in pages:
            out.extend(page.get("Contents", []))
        return out

    def _head(self, key: str, **extra) -> dict:
        return self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=key, **extra),
                          what=f"s3://{self.bucket}/{key}", key=key)

    def _check(self, key: str, head: dict) -> Check | None:
        """What the object is verified against (s3_checks.py); a multipart
        ETag costs two more HEADs (parts 1 and N) for its part size."""
        check = s3_checks.full_object_check(head) or s3_checks.single_part_check(head)
        parts = s3_checks.multipart_count(s3_checks.etag_of(head))
        if check is not None or parts is None or not s3_checks.etag_is_md5(head):
            return check
        first = int(self._head(key, PartNumber=1)["ContentLength"])
        last = first if parts == 1 else int(self._head(key, PartNumber=parts)["ContentLength"])
        size = s3_checks.part_size(int(head["ContentLength"]), parts, first, last)
        return s3_checks.multipart_check(head, size) if size is not None else None

    def _remote_file(self, rel: str, key: str) -> RemoteFile:
        # One HEAD per object: the listing gives no checksum values and no
        # encryption (which decides whether the ETag is an MD5). Its size
        # and ETag are the ones the check belongs to.
        head = self._head(key, ChecksumMode="ENABLED")
        return RemoteFile(rel, int(head["ContentLength"]), check=self._check(key, head), ref=key,
                          etag=s3_checks.etag_of(head) or None)

    def listing(self) -> Listing:
        folder = f"{self.prefix}/" if self.prefix else ""
        objects = self._call(self._list, what=self.label)
        wanted = []
        for obj in objects:
            key = obj["Key"]
            rel = key[len(folder):]
            if not rel or key.endswith("/") or not matches(rel, self.include):
                continue  # folder markers, and what --include leaves out
            wanted.append((rel, key))
        if not objects and self.prefix:
            # s3://bucket/path/model.bin names one object.
            wanted.append((posixpath.basename(self.prefix), self.prefix))
        if not wanted:
            raise NotFoundError(f"{self.label}/: no objects" + (" match --include" if objects else "")
                                + "; check the model's source in the policy")
        files = map_parallel(lambda rk: self._remote_file(*rk), wanted, self.jobs)
        etags = ",".join(sorted(f"{f.path}={f.etag}" for f in files))
        import hashlib

        return Listing(files, revision="", key=f"s3|{self.label}|{hashlib.sha256(etags.encode()).hexdigest()[:16]}")

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body:
        kwargs: dict = {"Bucket": self.bucket, "Key": f.ref}
        ranged = bool(offset) or end is not None
        if ranged:
            kwargs["Range"] = f"bytes={offset}-{end - 1 if end is not None else ''}"
        if f.etag:
            # Every read is of the object the plan's check belongs to.
            kwargs["IfMatch"] = f'"{f.etag}"'
        where = f"s3://{self.bucket}/{f.ref}"
        try:
            resp = self.client.get_object(**kwargs)
        except botocore.exceptions.ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412"):
                raise ChangedError(f"{where}: {code}: the object changed on the origin since it was listed; "
                                   f"the next start lists it again") from None
            if ranged and code in ("InvalidRange", "416"):
                if end is not None:
                    raise ChangedError(f"{where}: {code}: the object changed on the origin") from None
                body = self.open(f, 0, None)  # shorter: start over
                body.restarted = True
                return body
            raise self._translate(err, f.ref) from None
        except Exception as err:  # noqa: BLE001
            raise self._translate(err, f.ref) from None
        stream = resp["Body"]
        content_range = resp.get("ContentRange")
        restarted = ranged and not content_range
        total = None
        if content_range:
            try:
                total = checked_total(content_range, offset, where)
            except TransientError:
                stream.close()
                raise
        elif not ranged:
            total = resp.get("ContentLength")

        # read1 on the urllib3 response under botocore's StreamingBody: it
        # returns what has arrived (a stall loses no received byte, and no
        # 1 MiB is assembled from many small reads). Sizes are checked by the
        # fetcher, which is what StreamingBody's own check would add.
        raw = getattr(stream, "_raw_stream", None)
        if hasattr(raw, "read1"):
            def read(n: int) -> bytes:
                return raw.read1(n, decode_content=False)  # the object's bytes, as stored
        else:
            read = stream.read

        def chunks():
            try:
                while True:
                    buf = read(CHUNK)
                    if not buf:
                        return
                    yield buf
            except Exception as err:  # noqa: BLE001
                raise self._translate(err, f.ref) from None

        etag = (resp.get("ETag") or "").strip('"') or None
        return Body(chunks(), restarted=restarted, validator=etag, close=stream.close, total=total)
