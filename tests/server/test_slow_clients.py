"""Idle and slow connections must not starve `model-cache serve` (issue 9,
item 6): with 200 idle, slow-header and slow-body TLS connections held open
(reopened as soon as the server closes one), real reviews are still answered
within 1 s each. And the server bounds each kind of wait, so that what it
holds for a silent client is given back: no handshake, no request head, no
body, each within about 10 s (webhook.server.worker)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import Iterator

import pytest

from bench.bench_slow_clients import KINDS, Holders, KeptAlive, review_on_new_connection, typical_body
from tests.helpers import SERVICE_DNS_NAME
from tests.server_process import RunningServer, serving_example_policies
from webhook.server import worker

HELD = 200
ANSWER_WITHIN = 1.0
REVIEWS = 15


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with serving_example_policies(tmp_path, workers=2) as running:
        yield running


def tls_connect(server: RunningServer) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return ssl.create_default_context(cafile=str(server.cafile)).wrap_socket(raw, server_hostname=SERVICE_DNS_NAME)


def closed_by_server(sock: socket.socket, within: float) -> bytes:
    """What the server sent before it closed SOCK; fails if it is still open after WITHIN seconds."""
    sock.settimeout(within)
    data = b""
    deadline = time.monotonic() + within
    try:
        while chunk := sock.recv(65536):
            data += chunk
            sock.settimeout(max(0.01, deadline - time.monotonic()))
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        pass  # closed without a TLS close_notify, or with one: closed either way
    except (TimeoutError, socket.timeout):
        pytest.fail(f"the server kept the connection open more than {within} s")
    return data


def stopping_seen(server: RunningServer, within: float = 10) -> None:
    """Returns once gunicorn's master logged the SIGTERM: it signals every
    worker in the same call, right after that line."""
    deadline = time.monotonic() + within
    while "Handling signal: term" not in server.log_text():
        assert time.monotonic() < deadline, f"no sign of the SIGTERM in the log:\n{server.log_text()[-2000:]}"
        time.sleep(0.05)


def test_reviews_are_answered_within_1s_while_200_slow_connections_are_held(server: RunningServer) -> None:
    started = time.monotonic()
    # One of each kind, opened first, to see the server give them back later.
    silent_tcp = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # not even a ClientHello
    idle = tls_connect(server)
    slow_header = tls_connect(server)
    slow_header.sendall(b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nX-Slow: ")
    slow_body = tls_connect(server)
    slow_body.sendall(b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n{")

    ctx = ssl.create_default_context(cafile=str(server.cafile))
    body = typical_body()
    with Holders(server.port, server.cafile, list(KINDS), HELD) as holders:
        held = holders.wait_open(int(HELD * 0.9), 15)
        assert held["open"] >= HELD * 0.9, f"the server did not take the connections: {held}"
        kept = KeptAlive(server.port, ctx, timeout=ANSWER_WITHIN)
        slow: list[str] = []
        for _ in range(REVIEWS):
            for mode, review in (("new connection", lambda: review_on_new_connection(server.port, ctx, body, ANSWER_WITHIN)),
                                 ("kept-alive", lambda: kept.review(body))):
                try:
                    seconds = review()
                except (OSError, RuntimeError) as err:
                    slow.append(f"{mode}: {type(err).__name__} {err}")
                    continue
                if seconds > ANSWER_WITHIN:
                    slow.append(f"{mode}: {seconds:.2f} s")
        kept.close()
        still = holders.status()
        assert not slow, f"reviews not answered within {ANSWER_WITHIN} s with {still} held: {slow}"
        assert still["open"] >= HELD * 0.9, still

        # The silent ones are closed by the server: handshake, head and body are each bounded.
        bound = max(worker.HANDSHAKE_TIMEOUT, worker.FIRST_REQUEST_TIMEOUT, worker.BODY_TIMEOUT) + 3
        remaining = lambda: max(0.5, started + bound - time.monotonic())  # noqa: E731
        assert closed_by_server(silent_tcp, remaining()) == b""
        assert closed_by_server(idle, remaining()) == b""
        assert closed_by_server(slow_header, remaining()) == b""
        # A body that does not arrive gets the answer it can still read.
        answer = closed_by_server(slow_body, remaining())
        assert answer.startswith(b"HTTP/1.1 400 ") and b"\r\nConnection: close\r\n" in answer, answer[:300]
        review = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert review["kind"] == "AdmissionReview"
        assert f"not received within {worker.BODY_TIMEOUT:g}s" in review["response"]["status"]["message"]
        # The holders' own, opened a moment later, and reopened since.
        deadline = time.monotonic() + 5
        while holders.status()["closed_by_server"] < HELD // 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert holders.status()["closed_by_server"] >= HELD // 2, holders.status()
    for s in (silent_tcp, idle, slow_header, slow_body):
        s.close()

    # A stopping server closes kept-alive connections that wait for a next
    # request after a short linger, rather than waiting out graceful_timeout
    # (20 s) for them; a request that arrives meanwhile is still answered.
    waiting = [KeptAlive(server.port, ctx, timeout=5) for _ in range(3)]
    for k in waiting:
        k.review(body)
    stopping = time.monotonic()
    server.process.terminate()
    stopping_seen(server)
    late = waiting[0].sock
    assert late is not None
    late.sendall(b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    answer = closed_by_server(late, 8)
    # Answered by a worker that knew it was stopping: the connection is not kept.
    assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close\r\n" in answer, answer[:300]
    server.process.wait(timeout=10)
    assert time.monotonic() - stopping < 8
    for k in waiting[1:]:
        assert k.sock is not None
        assert closed_by_server(k.sock, 1) == b""
    for k in waiting:
        k.close()
    log = server.log_text()
    assert "Traceback" not in log, log[-3000:]


def test_serve_defaults_to_the_gevent_worker_and_keeps_gthread_on_request() -> None:
    import argparse

    from webhook.errors import ServeError
    from webhook.server.gunicorn import WORKER, worker_settings

    # The command line as it is (--threads, no --worker-class): gevent, --threads unused.
    assert worker_settings(argparse.Namespace(threads=8)) == {"worker_class": WORKER, "worker_connections": 1000}
    assert worker_settings(argparse.Namespace(worker_class="gevent", worker_connections=50))["worker_connections"] == 50
    assert worker_settings(argparse.Namespace(worker_class="gthread", threads=4)) == {"worker_class": "gthread", "threads": 4}
    with pytest.raises(ServeError, match="gevent .* or gthread"):
        worker_settings(argparse.Namespace(worker_class="sync"))


def test_serve_builds_no_access_log_atoms_unless_an_access_log_is_asked_for() -> None:
    from gunicorn.config import Config

    from webhook.cli.main import build_parser
    from webhook.server.gunicorn import gunicorn_options

    args = build_parser().parse_args(["serve", "--cert", "c", "--key", "k"])
    cfg = Config()
    for key, value in gunicorn_options(args).items():
        cfg.set(key, value)
    # The same logconfig_dict that makes gunicorn's own Logger build them.
    assert cfg.logconfig_dict
    assert cfg.logger_class(cfg).access_log_enabled is False
    cfg.set("accesslog", "-")
    assert cfg.logger_class(cfg).access_log_enabled is True
