"""hf://ORG/REPO: the Hugging Face Hub through huggingface_hub.

huggingface_hub resolves the revision to a commit, lists the tree (sizes, the
LFS sha256, the git blob ids) and builds the URLs and auth headers; the bytes
then go through our own fetcher. Why not hf_hub_download(local_dir=...): in
the installed huggingface_hub (2.x) every download goes to a process-unique
temporary file that is deleted on failure and never reused, so a killed pod
would fetch every file again from zero, and it checks sizes only. Our fetcher
resumes by Range and checks each LFS file's sha256 and each small file's git
blob id. (Xet-backed files are fetched over the Hub's plain resolve URLs,
which redirect to a CDN; requests drops the Authorization header on a
redirect to another host.)
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit

import httpx2
import requests
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers

from webhook.download.verify.checks import Check
from webhook.download.errors import AuthError, DownloadError, NotFoundError, TransientError, secret_hint
from webhook.download.remote import Body, Listing, RemoteFile
from webhook.download.fetching.retry import with_retries
from webhook.download.sources import http_common as hc
from webhook.download.sources.credentials import token, token_var
from webhook.download.uri import SourceSpec, matches


class HfSource:
    ranged = True     # large files may be fetched as parallel ranged parts (of the resolved CDN URL)
    immutable = True  # the URLs name a commit: their content cannot change

    def __init__(self, spec: SourceSpec, *, revision: str, include: list[str] | None, stall: float, jobs: int) -> None:
        self.spec = spec
        self.repo_id = spec.repo_id
        self.repo_type = spec.repo_type
        self.revision = revision
        self.include = include
        self.stall = stall
        self.label = f"hf://{spec.repo_id}@{revision}"
        self.token = token("hf")
        self.endpoint = constants.ENDPOINT  # HF_ENDPOINT, read by huggingface_hub
        self.api = HfApi(endpoint=self.endpoint, token=self.token if self.token else False)
        self.headers = build_hf_headers(token=self.token if self.token else False,
                                        library_name="model-cache", library_version="0.1.0")
        self.session = hc.make_session(jobs)
        self.endpoint_setting = "HF_ENDPOINT" if os.environ.get("HF_ENDPOINT") else None
        self._resolved: dict[str, str] = {}  # resolve URL -> where it redirects (the CDN), for parts
        self._resolve_lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}

    # -- errors --------------------------------------------------------------

    def _token_hint(self) -> str:
        var = token_var("hf")
        state = f"the {var} sent was refused or lacks access" if self.token else f"no {var} was set"
        return f"{state}; {secret_hint(var)}"

    def _translate(self, err: Exception) -> Exception:
        repo = f"hf://{self.repo_id}"
        if isinstance(err, RevisionNotFoundError):
            return NotFoundError(f"{repo}: revision {self.revision!r} not found; check the model's revision in the policy")
        if isinstance(err, GatedRepoError):
            return AuthError(f"{repo} is gated: accept its license on the Hub with the token's account; {self._token_hint()}")
        if isinstance(err, RepositoryNotFoundError):
            status = err.response.status_code if err.response is not None else 404
            if status in (401, 403):
                return AuthError(f"{repo}: HTTP {status}: repository not found or private; {self._token_hint()}")
            return NotFoundError(f"{repo}: repository not found (HTTP {status}); check the model's source in the policy")
        if isinstance(err, HfHubHTTPError):
            status = err.response.status_code if err.response is not None else 0
            if status in (401, 403):
                return AuthError(f"{repo}: HTTP {status}; {self._token_hint()}")
            if status in hc.TRANSIENT_STATUS or status == 0:
                after = None
                if err.response is not None:
                    from webhook.download.fetching.retry import parse_retry_after

                    after = parse_retry_after(err.response.headers.get("Retry-After"))
                return TransientError(f"{repo}: HTTP {status}", retry_after=after)
            if status == 404 and self.endpoint_setting:
                return NotFoundError(f"{repo}: HTTP 404 from HF_ENDPOINT={self.endpoint}, which does not answer like a "
                                     f"Hugging Face Hub (no repository error code); check HF_ENDPOINT (a mirror's "
                                     f"base URL, without /api)")
            return DownloadError(f"{repo}: HTTP {status}: {str(err).splitlines()[0]}")
        if isinstance(err, httpx2.TransportError):
            return hc.connect_error(err, self.endpoint, self.endpoint_setting)
        return err

    def _call(self, fn, what: str):
        def once():
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - translated, re-raised
                raise self._translate(err) from None

        return with_retries(once, what=what)

    # -- the source protocol -------------------------------------------------

    def listing(self) -> Listing:
        info = self._call(lambda: self.api.repo_info(self.repo_id, repo_type=self.repo_type, revision=self.revision),
                          what=self.label)
        commit = info.sha
        entries = self._call(
            lambda: list(self.api.list_repo_tree(self.repo_id, recursive=True, revision=commit, repo_type=self.repo_type)),
            what=self.label)
        files = []
        for e in entries:
            if not isinstance(e, RepoFile) or not matches(e.path, self.include):
                continue
            url = hf_hub_url(self.repo_id, e.path, repo_type=self.repo_type, revision=commit, endpoint=self.endpoint)
            files.append(self._remote_file(e, url))
        if not files:
            raise NotFoundError(f"hf://{self.repo_id}@{commit[:12]}: no file matches --include {' '.join(self.include or [])}")
        return Listing(files, revision=commit, key=f"hf|{self.repo_type}|{self.repo_id}|{commit}")

    @staticmethod
    def _remote_file(e: RepoFile, url: str) -> RemoteFile:
        """An LFS file (Xet-backed ones too) is checked against the sha256 of
        its LFS pointer, any other file against its git blob id: the tree
        listing gives both, so every hf file is verified."""
        if e.lfs is not None:
            return RemoteFile(e.path, e.lfs.size, check=Check("sha256", e.lfs.sha256.lower(), "Hub LFS"), ref=url)
        return RemoteFile(e.path, e.size, check=Check("git-blob-sha1", e.blob_id.lower(), "Hub git blob id"), ref=url,
                          etag=e.blob_id)

    def _on_status(self, resp: requests.Response) -> None:
        if resp.status_code in (401, 403):
            raise AuthError(f"hf://{self.repo_id}: HTTP {resp.status_code} on {hc.safe_url(resp.url)}; {self._token_hint()}")
        if resp.status_code == 404:
            raise NotFoundError(f"hf://{self.repo_id}@{self.revision}: {hc.safe_url(resp.url)} not found")

    def _resolve(self, url: str) -> str:
        try:
            resp = self.session.head(url, headers={"Accept-Encoding": "identity", **self.headers},
                                     timeout=(hc.CONNECT_TIMEOUT, self.stall), allow_redirects=True,
                                     proxies=hc.proxies(url))
        except hc.TRANSIENT_EXC as err:
            raise hc.connect_error(err, url, self.endpoint_setting) from None
        resp.close()
        if resp.status_code >= 400:
            self._on_status(resp)
            if resp.status_code in hc.TRANSIENT_STATUS:
                raise hc.transient_status(url, resp)
            raise DownloadError(f"hf://{self.repo_id}: HTTP {resp.status_code} on {hc.safe_url(resp.url)}")
        return resp.url

    def _cdn_url(self, url: str) -> tuple[str, dict[str, str]]:
        """Where a resolve URL redirects (the CDN), found once per file, so that
        each part goes straight there instead of through the Hub's redirect.
        Authorization goes only to the Hub's own host, as requests does on a
        redirect."""
        with self._resolve_lock:
            final = self._resolved.get(url)
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        if final is None:
            with url_lock:  # the parts of one file start together: one HEAD for all of them
                with self._resolve_lock:
                    final = self._resolved.get(url)
                if final is None:
                    final = self._resolve(url)
                    with self._resolve_lock:
                        self._resolved[url] = final
        same_host = urlsplit(final).netloc == urlsplit(url).netloc
        if same_host:
            return final, self.headers
        return final, {k: v for k, v in self.headers.items() if k.lower() != "authorization"}

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body:
        # No If-Range: the URL names a commit, so its content cannot change.
        if end is None:
            return hc.open_range(self.session, f.ref, offset, None, self.headers, self.stall, self._on_status)
        url, headers = self._cdn_url(f.ref)
        try:
            return hc.open_range(self.session, url, offset, None, headers, self.stall, self._on_status, end=end)
        except (AuthError, NotFoundError, TransientError):
            if url == f.ref:
                raise
            # A signed CDN URL may have expired: resolve it again on the retry.
            with self._resolve_lock:
                self._resolved.pop(f.ref, None)
            raise TransientError(f"{hc.safe_url(url)}: the CDN URL was refused; resolving it again") from None
