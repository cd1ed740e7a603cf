"""https:// and http:// sources: one file, or an archive to unpack (archive/unpack.py).
Verified against the policy's sha256, else the digest the origin's HEAD
states (http_digest.py), else by its size only."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

import requests

from webhook.download.verify.checks import Check
from webhook.download.errors import AuthError, secret_hint
from webhook.download.remote import SCRATCH, Body, Listing, RemoteFile
from webhook.download.fetching.retry import with_retries
from webhook.download.sources import http_common as hc
from webhook.download.sources.credentials import token, token_var
from webhook.download.sources.http_digest import digest_check
from webhook.download.uri import SourceSpec, archive_suffix


class HttpSource:
    ranged = True      # large files may be fetched as parallel ranged parts
    immutable = False  # a URL's content may change: parts are checked against the ETag

    def __init__(self, spec: SourceSpec, *, sha256: str | None, stall: float, jobs: int) -> None:
        self.spec = spec
        self.url = spec.url
        self.label = hc.safe_url(spec.url)
        self.sha256 = sha256.lower() if sha256 else None
        self.stall = stall
        self.session = hc.make_session(jobs)
        bearer = token("http")
        self.headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}

    def _on_status(self, resp: requests.Response) -> None:
        if resp.status_code in (401, 403):
            var = token_var("http")
            have = f"the token in {var} was refused" if self.headers else "no token was sent"
            raise AuthError(f"{self.label}: HTTP {resp.status_code}: {have}; {secret_hint(var)}")

    def listing(self) -> Listing:
        path = unquote(urlsplit(self.url).path)
        suffix = archive_suffix(path)
        size, headers = with_retries(lambda: hc.probe(self.session, self.url, self.headers, self.stall, self._on_status),
                                     what=self.label)
        # The policy's sha256 is the user's own word; the origin's digest header is used without one.
        check = Check("sha256", self.sha256, "policy") if self.sha256 else digest_check(headers)
        if suffix:
            rel = f"{SCRATCH}/download/archive{suffix}"
        else:
            rel = posixpath.basename(path) or "model"
        f = RemoteFile(rel, size, check=check, ref=self.url)
        return Listing([f], revision="", key=f"http|{self.label}|{check.value if check else ''}", archive=suffix)

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body:
        return hc.open_range(self.session, self.url, offset, validator, self.headers, self.stall, self._on_status,
                             end=end)
