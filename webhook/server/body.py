"""A request body read into an AdmissionReview request, or the reason it could
not be: over the cap, broken HTTP framing, a client gone mid-body, not a
review. A stream and the announced length in, a value out; the app logs,
counts and answers what comes out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union

from gunicorn.http.errors import ParseException as HttpParseError
from werkzeug.exceptions import ClientDisconnected

from webhook.admission import envelope
from webhook.admission.envelope import MAX_BODY_BYTES, parse_review, request_uid
from webhook.errors import MalformedReview


# A client still sending when we answer 413 sees a reset instead of the answer;
# read and drop what a sane client sends, up to this much, before answering.
DRAIN_LIMIT = 16 * 1024 * 1024
_DRAIN_STEP = 256 * 1024

# What reading a body raises when the client broke HTTP/1.1 framing (a chunk
# size that is not hex, a missing CRLF, a bad trailer): the client is still
# there and gets a 400. The server closes the connection after it, since where
# the next request would start is unknown (gunicorn marks the body failed).
BAD_FRAMING: tuple[type[Exception], ...] = (HttpParseError,)
# What it raises when the client went away or stalled mid-body: a reset, an
# EOF before the end (gunicorn's NoMoreData is an IOError), the worker's body
# deadline (a TimeoutError), werkzeug's ClientDisconnected under other servers.
CLIENT_GONE: tuple[type[Exception], ...] = (OSError, ClientDisconnected)


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class IncompleteBody(Exception):
    """The client sent less body than it announced, or stopped sending."""


@dataclass(frozen=True)
class Malformed:
    """A body that is no review we can answer: answered with HTTP `status`,
    logged as a warning and counted as a malformed review."""

    reason: str
    uid: str = ""
    status: int = 400


@dataclass(frozen=True)
class Incomplete:
    """A client that went away or stalled mid-body: not a malformed review,
    so one quiet log line and no count; answered 400 if it still listens."""

    reason: str


Unreadable = Union[Malformed, Incomplete]


def too_large(length: int) -> Malformed:
    """A body that announced LENGTH bytes, over the cap: HTTP 413."""
    return Malformed(envelope.too_large(length), status=413)


def read_review(stream: Readable, length: int | None) -> dict[str, Any] | Unreadable:
    """The review's request read from STREAM, whose Content-Length is LENGTH
    (None when chunked), its shape checked; else why it cannot be answered."""
    if length is not None and length > MAX_BODY_BYTES:
        drain(stream, length)
        return too_large(length)
    try:
        body = read_body(stream, length)
    except BAD_FRAMING as err:
        return Malformed(f"request body is not valid HTTP/1.1 chunked encoding: {err}")
    except (IncompleteBody, *CLIENT_GONE) as err:
        return Incomplete(why_incomplete(err))
    try:
        return parse_review(body)
    except MalformedReview as err:
        # A 413 is about the size, not the review: its uid is not worth a parse.
        uid = request_uid(body) if err.status == 400 else ""
        return Malformed(str(err), uid, err.status)


def read_body(stream: Readable, length: int | None) -> bytes:
    """The body, all LENGTH bytes of it; IncompleteBody when fewer came. A
    chunked body (no LENGTH) is read to one byte past the cap, which tells
    that the cap was exceeded."""
    wanted = MAX_BODY_BYTES + 1 if length is None else length
    body = stream.read(wanted)
    if length is not None and len(body) < length:
        raise IncompleteBody(f"{len(body)} of {length} bytes received")
    return body


def drain(stream: Readable, length: int) -> None:
    """Reads and drops up to LENGTH bytes (at most DRAIN_LIMIT), quietly
    stopping at the end of the stream or where the client broke off."""
    remaining = min(length, DRAIN_LIMIT)
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, _DRAIN_STEP))
            if not chunk:
                break
            remaining -= len(chunk)
    except BAD_FRAMING + CLIENT_GONE:
        pass  # the 413 is the answer either way; the connection closes after it


def why_incomplete(err: Exception) -> str:
    """A short reason for a body that stopped: the error's own words when it
    has some to say (bytes received, the deadline), else what broke off."""
    if isinstance(err, (IncompleteBody, TimeoutError)) and str(err):
        return str(err)
    return f"connection closed mid-body ({type(err).__name__})"
