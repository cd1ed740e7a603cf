"""Reading a review off a request body, without Flask: gunicorn's own body
readers over plain bytes, as a worker hands them to the app."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import IterUnreader

from tests.helpers import golden_pod, pod_review
from webhook.admission.envelope import MAX_BODY_BYTES
from webhook.server.body import DRAIN_LIMIT, Incomplete, Malformed, drain, read_review, why_incomplete


def sent(data: bytes, length: int) -> Body:
    """A body with Content-Length LENGTH of which the client sent DATA, then closed."""
    return Body(LengthReader(IterUnreader([data]), length))


def chunked(data: bytes) -> Body:
    """A `Transfer-Encoding: chunked` body whose bytes on the wire are DATA."""
    return Body(ChunkedReader(SimpleNamespace(), IterUnreader([data])))


def as_chunks(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


REVIEW = json.dumps(pod_review(golden_pod("vllm-gpu-pvc"), uid="u1")).encode()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_review_is_read_into_its_request(framing: str) -> None:
    stream = sent(REVIEW, len(REVIEW)) if framing == "content-length" else chunked(as_chunks(REVIEW))
    request = read_review(stream, len(REVIEW) if framing == "content-length" else None)
    assert isinstance(request, dict) and request["uid"] == "u1" and request["operation"] == "CREATE"


def test_an_announced_body_over_the_cap_is_413_and_drained_first() -> None:
    length = MAX_BODY_BYTES + 1
    stream = io.BytesIO(b"x" * length)
    assert read_review(stream, length) == Malformed(
        f"request body is {length} bytes; the limit is {MAX_BODY_BYTES}", status=413)
    assert stream.tell() == length  # read to its end: the client sees the 413, not a reset


def test_a_chunked_body_over_the_cap_is_413() -> None:
    review = pod_review({"metadata": {"annotations": {"pad": "x" * MAX_BODY_BYTES}}}, uid="big")
    outcome = read_review(chunked(as_chunks(json.dumps(review).encode())), None)
    assert outcome == Malformed(f"request body is {MAX_BODY_BYTES + 1} bytes; the limit is {MAX_BODY_BYTES}",
                                status=413)


def test_drain_reads_no_more_than_its_limit() -> None:
    stream = io.BytesIO(bytes(DRAIN_LIMIT + 4096))
    drain(stream, DRAIN_LIMIT + 4096)
    assert stream.tell() == DRAIN_LIMIT


@pytest.mark.parametrize("stream", [chunked(b"40\r\n{\"apiVersion\""), chunked(b"zz\r\n{}\r\n0\r\n\r\n"),
                                    sent(b"{", 5000)], ids=["chunked-cut", "bad-framing", "short"])
def test_drain_stops_quietly_where_the_client_broke_off(stream: Body) -> None:
    drain(stream, MAX_BODY_BYTES + 1)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", "Invalid chunk size: b'zz'"),  # not hex
        (b"2\r\n{}}}\r\n0\r\n\r\n", "chunk"),  # longer than announced: no CRLF where it must be
    ],
)
def test_broken_chunked_framing_is_malformed_and_names_the_fault(wire: bytes, reason: str) -> None:
    outcome = read_review(chunked(wire), None)
    assert isinstance(outcome, Malformed) and outcome.status == 400 and outcome.uid == ""
    assert outcome.reason.startswith("request body is not valid HTTP/1.1 chunked encoding: ")
    assert reason in outcome.reason


def test_a_client_gone_mid_body_is_incomplete_not_malformed() -> None:
    assert read_review(sent(b'{"apiVersion":', 5000), 5000) == Incomplete("14 of 5000 bytes received")
    assert read_review(chunked(b'40\r\n{"apiVersion":'), None) == Incomplete(
        "connection closed mid-body (NoMoreData)")


def test_why_incomplete_keeps_the_deadline_message() -> None:
    assert why_incomplete(TimeoutError("request body not received within 10s")) == "request body not received within 10s"
    assert why_incomplete(ConnectionResetError()) == "connection closed mid-body (ConnectionResetError)"


@pytest.mark.parametrize(
    ("body", "uid", "reason"),
    [
        (b"not json", "", "body is not JSON"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                     "request": {"uid": "u9", "kind": {"kind": "Pod"}, "operation": "CREATE"}}).encode(),
         "u9", "a CREATE request must carry an object"),
    ],
)
def test_a_body_that_is_no_review_is_malformed_and_answered_by_its_uid(body: bytes, uid: str, reason: str) -> None:
    outcome = read_review(sent(body, len(body)), len(body))
    assert isinstance(outcome, Malformed) and outcome.status == 400 and outcome.uid == uid
    assert reason in outcome.reason
