"""HTTP(S) streaming with requests, shared by the http and hf sources.

The stall watchdog is the socket read timeout: a connection that delivers no
byte for `stall` seconds raises, and the fetcher resumes it by Range.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterator, Mapping, NoReturn
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from webhook.download.fetching import network_messages
from webhook.download.errors import ChangedError, DownloadError, NotFoundError, TransientError
from webhook.download.remote import CHUNK, Body
from webhook.download.fetching.retry import parse_retry_after
from webhook.download.sources.ranges import checked_total, content_range_start_total

CONNECT_TIMEOUT = 15.0
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

TRANSIENT_EXC = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


def safe_url(url: str) -> str:
    """The URL without credentials or query string (presigned URLs carry secrets there)."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host += f":{p.port}"
    return urlunsplit((p.scheme, host, p.path, "", ""))


def make_session(jobs: int) -> requests.Session:
    s = requests.Session()
    # requests reads the proxy and CA variables from the environment on every
    # request (a third of the time of a small file); read them once instead.
    s.trust_env = False
    ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca:
        s.verify = ca
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(jobs, 4), max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


@functools.lru_cache(maxsize=64)
def proxies_for_origin(scheme_host: str) -> dict[str, str]:
    """HTTPS_PROXY/HTTP_PROXY/NO_PROXY for one origin, as requests would apply them."""
    return requests.utils.get_environ_proxies(scheme_host)


def proxies(url: str) -> dict[str, str]:
    p = urlsplit(url)
    return proxies_for_origin(f"{p.scheme}://{p.netloc}/")


def connect_error(err: BaseException, url: str, setting: str | None = None) -> TransientError:
    """A TransientError that names the cause and the fix (refused, DNS, proxy),
    not urllib3's nested 'Max retries exceeded ... (Caused by ...)'."""
    text = network_messages.describe(err, url, setting)
    return TransientError(text or f"{safe_url(url)}: {type(err).__name__}: {_short(err)}")


def get(session: requests.Session, url: str, headers: dict[str, str], stall: float,
        setting: str | None = None) -> requests.Response:
    try:
        # Redirects (a CDN) are followed by requests with these same proxies,
        # which is right for a single corporate proxy.
        return session.get(url, headers={"Accept-Encoding": "identity", **headers}, stream=True,
                           timeout=(CONNECT_TIMEOUT, stall), allow_redirects=True, proxies=proxies(url))
    except TRANSIENT_EXC as err:
        raise connect_error(err, url, setting) from None


def transient_status(url: str, resp: requests.Response) -> TransientError:
    """429/5xx, carrying the origin's Retry-After for the retry policy."""
    after = parse_retry_after(resp.headers.get("Retry-After"))
    hint = f" (Retry-After {after:.0f}s)" if after is not None else ""
    return TransientError(f"{safe_url(url)}: HTTP {resp.status_code}{hint}", retry_after=after)


def raise_for_status(url: str, resp: requests.Response, on_status: Callable[[requests.Response], None]) -> NoReturn:
    """The one mapping of an HTTP error status to our errors, for GET and HEAD:
    the source's own 401/403/404 first (`on_status`), then 429/5xx to retry,
    404/410 as not found, anything else as a plain failure."""
    on_status(resp)
    if resp.status_code in TRANSIENT_STATUS:
        raise transient_status(url, resp)
    if resp.status_code in (404, 410):
        raise NotFoundError(f"{safe_url(url)}: HTTP {resp.status_code}: not found; check the model's source URL")
    raise DownloadError(f"{safe_url(url)}: HTTP {resp.status_code} {resp.reason}")


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text[:200]


def stream(resp: requests.Response) -> Iterator[bytes]:
    """The body as raw bytes (no decoding), with transport errors as TransientError."""
    raw = resp.raw
    try:
        while True:
            # read1: whatever has arrived, so that a stall loses no received byte
            buf = raw.read1(CHUNK, decode_content=False)
            if not buf:
                return
            yield buf
    except TRANSIENT_EXC as err:
        kind = network_messages.cause(err)
        what = "no byte arrived within the stall timeout" if kind == "timeout" else f"{type(err).__name__}: {_short(err)}"
        raise TransientError(f"read failed: {what}") from None


def open_range(session: requests.Session, url: str, offset: int, validator: str | None,
               headers: dict[str, str], stall: float,
               on_status: Callable[[requests.Response], None], end: int | None = None) -> Body:
    """GET from `offset` to the end, or to `end` (exclusive) for one part.
    `on_status` raises the source's own errors for 401/403/404; what it lets
    through is handled here."""
    h = dict(headers)
    ranged = bool(offset) or end is not None
    if ranged:
        h["Range"] = f"bytes={offset}-{end - 1 if end is not None else ''}"
        if validator:
            h["If-Range"] = validator  # the origin sends the whole new file if it changed
    resp = get(session, url, h, stall)
    if resp.status_code == 416 and end is not None:
        resp.close()  # a part beyond the end: the object shrank
        raise ChangedError(f"{safe_url(url)}: HTTP 416 for bytes {offset}-{end - 1}: the file changed on the origin")
    if resp.status_code == 416 and offset:
        resp.close()  # our partial is as long as the file or longer: start over
        resp = get(session, url, headers, stall)
        offset = -1
    if resp.status_code >= 400:
        resp.close()
        raise_for_status(url, resp, on_status)
    restarted = False
    total = None
    if ranged and resp.status_code == 206:
        try:
            total = checked_total(resp.headers.get("Content-Range"), max(offset, 0), safe_url(url))
        except TransientError:
            resp.close()
            raise
    elif offset != 0 or ranged:
        restarted = True  # 200 to a Range request (or after a 416)
    if not ranged or restarted:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
    if validator and validator.startswith("W/"):
        validator = None  # a weak ETag cannot be used with If-Range
    return Body(stream(resp), restarted=restarted, validator=validator, close=resp.close, total=total)


def probe(session: requests.Session, url: str, headers: dict[str, str], stall: float,
          on_status: Callable[[requests.Response], None], setting: str | None = None
          ) -> tuple[int | None, Mapping[str, str]]:
    """The file's size and the response's headers (a digest, for one): a
    HEAD, or where that is refused (presigned URLs sign the method) a 1-byte
    Range GET."""
    try:
        resp = session.head(url, headers={"Accept-Encoding": "identity", **headers},
                            timeout=(CONNECT_TIMEOUT, stall), allow_redirects=True, proxies=proxies(url))
    except TRANSIENT_EXC as err:
        raise connect_error(err, url, setting) from None
    if resp.status_code in (403, 405, 501) or (resp.ok and "Content-Length" not in resp.headers):
        resp = get(session, url, {**headers, "Range": "bytes=0-0"}, stall, setting)
        resp.close()
    if resp.status_code >= 400:
        raise_for_status(url, resp, on_status)
    if resp.status_code == 206:
        cr = content_range_start_total(resp.headers.get("Content-Range"))
        return (cr[1] if cr else None), resp.headers
    length = resp.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), resp.headers
