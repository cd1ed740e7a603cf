"""Broken HTTP/1.1 framing and clients that go away mid-body, against a real
`model-cache serve` over TLS: a clean 400 AdmissionReview when the client is
still there to read it, one quiet log line when it is not, never a 500 or a
traceback, and the server answers the next client as usual."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import time
from typing import Iterator

import pytest
import yaml

from tests.helpers import GOLDEN, SERVICE_DNS_NAME, TLSClient, pod_review
from tests.server_process import RunningServer, serving_example_policies

HEAD = b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own: its log must hold only what these tests caused."""
    tmp = tmp_path_factory.mktemp("edge")
    with serving_example_policies(tmp, workers=1) as running:
        yield running


def connect(server: RunningServer) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(server.cafile))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=SERVICE_DNS_NAME)


def read_answer(sock: ssl.SSLSocket) -> tuple[int, dict, bytes]:
    """Status, JSON body, and whatever the server sent after the answer."""
    status, _, answer, rest = read_response(sock)
    return status, answer, rest


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += sock.recv(65536)
    headers = {k.decode().lower(): v.decode().strip() for k, v in (l.split(b":", 1) for l in head.split(b"\r\n")[1:])}
    return int(head.split(b" ")[1]), headers, json.loads(rest[:length]), rest[length:]


def assert_closed_by_server(sock: ssl.SSLSocket, leftover: bytes) -> None:
    assert leftover == b""
    sock.settimeout(5)
    try:
        assert sock.recv(65536) == b"", "the server sent more after the answer"
    except ConnectionResetError:
        pass


def log_lines(server: RunningServer) -> list[dict]:
    return [json.loads(l) for l in server.log_text().splitlines() if l.startswith("{")]


def wait_for_log(server: RunningServer, needle: str, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        hits = [l for l in log_lines(server) if needle in l["message"]]
        if len(hits) >= count or time.monotonic() > deadline:
            return hits
        time.sleep(0.05)


def assert_server_answers(server: RunningServer, uid: str = "after") -> None:
    client = TLSClient(server.port, server.cafile)
    pod = yaml.safe_load((GOLDEN / "vllm-gpu-pvc.in.yaml").read_text())
    status, answer = client.post_json("/mutate", pod_review(pod, uid=uid))
    client.close()
    assert status == 200 and answer["response"]["uid"] == uid and answer["response"]["allowed"] is True


def body_awaited(sock: ssl.SSLSocket, head: bytes) -> None:
    """Sends HEAD asking `Expect: 100-continue` and returns once the server has
    parsed it and waits for the body (gunicorn answers 100 Continue then)."""
    sock.sendall(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before 100 Continue: {data!r}"
        data += chunk
    assert data == b"HTTP/1.1 100 Continue\r\n\r\n", data


def settled(server: RunningServer, uid: str) -> None:
    """Returns once a later review UID was answered and logged: the one worker's
    greenlets run one at a time, and the gone client's had nothing left to wait
    for, so whatever it would log after writing to the closed socket is in the log."""
    assert_server_answers(server, uid)
    deadline = time.monotonic() + 10
    while not [l for l in log_lines(server) if l.get("uid") == uid]:
        assert time.monotonic() < deadline, f"review {uid} answered but not logged"
        time.sleep(0.05)


def assert_no_traceback(server: RunningServer) -> None:
    text = server.log_text()
    assert "Traceback" not in text and not [l for l in log_lines(server) if "exception" in l], text[-3000:]
    assert not [l for l in log_lines(server) if l["level"] == "error"], text[-3000:]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", "Invalid chunk size"),  # not hex
        (b"-2\r\n{}\r\n0\r\n\r\n", "Invalid chunk size"),
        (b"2\r\n{}}}\r\n0\r\n\r\n", "chunk"),  # longer than announced: no CRLF where it must be
        (b"0x2\r\n{}\r\n0\r\n\r\n", "Invalid chunk size"),
    ],
)
@pytest.mark.parametrize("path", [b"/mutate", b"/validate"])
def test_invalid_chunked_body_gets_a_400_admission_review_and_the_connection_closes(
        server: RunningServer, path: bytes, body: bytes, reason: str) -> None:
    sock = connect(server)
    try:
        sock.sendall(HEAD.replace(b"/mutate", path) + b"Transfer-Encoding: chunked\r\n\r\n" + body)
        status, headers, answer, leftover = read_response(sock)
        assert status == 400 and headers["connection"] == "close"
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        response = answer["response"]
        assert response["allowed"] is False and response["status"]["code"] == 400
        assert "chunked encoding" in response["status"]["message"] and reason in response["status"]["message"]
        # Where a next request would start is unknown: nothing more is read from this connection.
        assert_closed_by_server(sock, leftover)
    finally:
        sock.close()
    assert_server_answers(server)
    assert_no_traceback(server)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_gone_mid_body_gives_one_quiet_log_line(server: RunningServer, framing: str) -> None:
    before = len(wait_for_log(server, "request body incomplete", 0))
    sock = connect(server)
    if framing == "content-length":
        body_awaited(sock, HEAD + b"Content-Length: 5000\r\n\r\n")
        sock.sendall(b'{"apiVersion": "admission.k8s.io/v1",')
    else:
        body_awaited(sock, HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b'40\r\n{"apiVersion": "admission.k8s.io/v1",')
    sock.close()
    hits = wait_for_log(server, "request body incomplete", before + 1)
    assert len(hits) == before + 1
    line = hits[-1]
    assert line["level"] == "info" and line["endpoint"] == "mutate" and "exception" not in line
    settled(server, f"after-gone-{framing}")
    assert len(wait_for_log(server, "request body incomplete", 0)) == before + 1
    assert_no_traceback(server)


def test_reset_mid_body_gives_one_quiet_log_line(server: RunningServer) -> None:
    before = len(wait_for_log(server, "request body incomplete", 0))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock = ssl.create_default_context(cafile=str(server.cafile)).wrap_socket(raw, server_hostname=SERVICE_DNS_NAME)
    body_awaited(sock, HEAD + b"Content-Length: 5000\r\n\r\n")
    sock.sendall(b"{")
    # SO_LINGER 0: close sends a TCP reset rather than a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    hits = wait_for_log(server, "request body incomplete", before + 1)
    assert len(hits) == before + 1 and "exception" not in hits[-1]
    settled(server, "after-reset")
    assert len(wait_for_log(server, "request body incomplete", 0)) == before + 1
    assert_no_traceback(server)


def test_valid_chunked_review_is_answered(server: RunningServer) -> None:
    pod = yaml.safe_load((GOLDEN / "vllm-gpu-pvc.in.yaml").read_text())
    body = json.dumps(pod_review(pod, uid="chunked-ok")).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500]) for i in range(0, len(body), 500))
    sock = connect(server)
    try:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        status, headers, answer, _ = read_response(sock)
        assert status == 200 and answer["response"]["uid"] == "chunked-ok" and "patch" in answer["response"]
        assert headers["connection"] == "keep-alive"
        # Kept alive: a second review on the same connection.
        sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert read_answer(sock)[0] == 200
    finally:
        sock.close()
