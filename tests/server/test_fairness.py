"""One busy kept-alive connection must not hold up the other connections of
its worker (issue 18): a client that has its next request ready as soon as it
has an answer (the API server in a burst, wrk) would otherwise be served over
and over while the others wait, because its reads never block and a greenlet
only gives way when one does (webhook.server.worker)."""

from __future__ import annotations

import json
import select
import ssl
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.bench_webhook import admission_review
from tests.helpers import TLSClient
from tests.server_process import RunningServer, serving_example_policies

BATCH = 1000
# An unannotated pod: answered "skipped" with a few hundred bytes, so the
# batch's answers fit in the socket buffers and the server never has to wait
# to write one (a wait would give the other connection its turn anyway).
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": "llm"},
       "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


@pytest.fixture()
def one_worker(tmp_path: Path) -> Iterator[RunningServer]:
    with serving_example_policies(tmp_path, workers=1) as running:
        yield running


def request(body: bytes) -> bytes:
    return (b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def skipped_reviews(metrics_page: str) -> float:
    for family in text_string_to_metric_families(metrics_page):
        for sample in family.samples:
            if (sample.name == "model_cache_reviews_total" and sample.labels.get("endpoint") == "mutate"
                    and sample.labels.get("result") == "skipped"):
                return sample.value
    return 0.0


def test_a_connection_with_requests_queued_does_not_hold_up_the_others(one_worker: RunningServer) -> None:
    busy = TLSClient(one_worker.port, one_worker.cafile)
    other = TLSClient(one_worker.port, one_worker.cafile)
    # Both connections open and served once: each has its greenlet, waiting.
    for client in (busy, other):
        assert client.request("GET", "/healthz")[0] == 200

    # BATCH reviews pipelined on one connection: all but the first are
    # buffered by the time the server reads again, as with a client that
    # answers at once. One thread drives this connection (an SSL object is
    # not to be shared between threads), another asks on the other one.
    pending = memoryview(request(json.dumps(admission_review(POD)).encode()) * BATCH)
    received = bytearray()
    seen_first = threading.Event()
    asked: dict[str, float] = {}

    def ask_other() -> None:
        status, page, _ = other.request("GET", "/metrics")
        assert status == 200
        asked["before"] = skipped_reviews(page.decode())

    asker = threading.Thread(target=ask_other, daemon=True)
    sock = busy.conn.sock
    sock.setblocking(False)
    deadline = time.monotonic() + 60
    while received.count(b"HTTP/1.1 200 ") < BATCH:
        assert time.monotonic() < deadline, f"{received.count(b'HTTP/1.1 200 ')} of {BATCH} answered in 60 s"
        readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1)
        if writable or sock.pending():
            try:
                pending = pending[sock.send(pending[:65536]):]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        if readable or sock.pending():
            try:
                received.extend(sock.recv(65536))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
        if received and not seen_first.is_set():
            # The server is serving the batch: the other connection asks now,
            # and the counter it gets shows how many of the batch went first.
            seen_first.set()
            asker.start()
    asker.join(30)
    assert "before" in asked, "the other connection got no answer"
    # Served in turn, the other request waits for a review or two of the
    # batch, not for the rest of it.
    assert asked["before"] < BATCH / 2, f"{asked['before']:.0f} of {BATCH} queued reviews were served before a waiting request"
    busy.close()
    other.close()
