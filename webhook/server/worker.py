"""The gunicorn worker of `model-cache serve`: gevent, one greenlet per connection.

Why not gthread: there, a connection being read holds one of the worker's
threads, so 16 idle or slow clients (2 workers x 8 threads) stopped the server
from answering anyone, and with `failurePolicy: Fail` that blocks every
annotated pod of the cluster. A greenlet waiting for bytes costs memory
(30-70 KiB with its TLS state, docs/benchmarks.md) and no thread; a worker
holds up to `worker_connections` of them.

Each wait is bounded too, so that a connection that says nothing gives its
slot back:

- the TLS handshake: HANDSHAKE_TIMEOUT;
- the first request's head: FIRST_REQUEST_TIMEOUT (the API server sends its
  request as soon as it has connected); the next ones: `keepalive` (idle time
  between two requests, which the API server relies on);
- a request's body: BODY_TIMEOUT in all, counted from the end of its head.

Three sharp edges of gevent, handled here:

- A greenlet gives way only when it would block. A kept-alive client whose
  next request is already buffered when its answer has gone would be served
  again and again while the worker's other connections wait: after each
  answer a connection waits for the loop to go idle (handle_request).
- The master imports kubernetes, hence urllib3, before it forks the workers,
  which monkey-patch after the fork. urllib3 keeps the `SSLContext` class it
  imported, and an instance of the unpatched class recurses forever under the
  patched ssl module (gevent issue 1016): the API server lookups of the
  validating half would fail. The worker points urllib3 at the patched class.
- gunicorn's own gevent worker builds one SSLContext per worker when it
  starts; here every connection asks the `ssl_context` hook (tls.py), so a
  rotated certificate is served without a restart.

The master is never patched: the certificate manager's thread (certs.manager)
stays a real thread there, and gunicorn's signal and child handling is as with
any worker class. In a worker, threading, socket, ssl, queue and time are
patched: a "thread" the app starts (the lookups' pool, the Events sender) is a
greenlet, fine for network waits, but a long computation in it holds up every
connection of that worker.
"""

from __future__ import annotations

import gc
import sys
import time
import warnings
from contextlib import contextmanager
from functools import partial
from typing import Any, Iterator

import gevent
from gevent import monkey
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.http.errors import NoMoreData
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

HANDSHAKE_TIMEOUT = 10.0
FIRST_REQUEST_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
# On SIGTERM, a kept-alive connection waiting for its next request is closed
# after STOP_LINGER (a request already on its way is still answered, with
# `Connection: close`), not after graceful_timeout; a request in progress gets
# up to graceful_timeout.
STOP_LINGER = 2.0
STOP_POLL = 0.2


class BodyTimeout(TimeoutError):
    """A request body not received in time. A TimeoutError (so an OSError,
    like any other failure of the client's side) that gunicorn's body reader
    notes as a failed read: the connection is closed after the answer."""


class ModelCacheWorker(GeventWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served: dict[Any, int] = {}  # connection greenlet -> requests answered
        self._idle: set[Any] = set()  # connection greenlets waiting for a request head

    def patch(self) -> None:
        with warnings.catch_warnings():
            # The "ssl imported before patching" warning names urllib3, fixed below.
            warnings.simplefilter("ignore", monkey.MonkeyPatchWarning)
            super().patch()
        _point_urllib3_at_patched_ssl()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = BodyDeadline(self.wsgi, BODY_TIMEOUT)
        # The app, Flask, gevent and the kubernetes client are some 70,000
        # objects that live as long as the worker. Left to the collector, each
        # full collection walks them all (about 10 ms on this machine, during
        # which no connection of the worker is served); frozen, it walks only
        # what requests leave behind.
        gc.freeze()

    def run(self) -> None:
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            # No ssl_context here (unlike gunicorn's worker): handle() wraps
            # each connection with the context of that moment.
            server = StreamServer(listener, handle=partial(self.handle, listener), spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                # One connection per wake-up, not gevent's 100: the workers
                # share the listening socket, and the next connection may go
                # to one that is less busy. No pause after an accept: 3 ms
                # (which this once had) slowed a burst's new connections
                # without balancing them any better (docs/benchmarks.md).
                server.max_accept = 1
            server.start()
            servers.append(server)

        while self.alive:
            self.notify()
            gevent.sleep(1.0)

        for server in servers:
            server.close()
        stopped = time.monotonic()
        while any(server.pool.free_count() != server.pool.size for server in servers):
            if time.monotonic() > stopped + self.cfg.graceful_timeout:
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for server in servers:
                    server.stop(timeout=1)
                return
            if time.monotonic() > stopped + STOP_LINGER:
                self._close_idle()
            self.notify()
            gevent.sleep(STOP_POLL)

    def _close_idle(self) -> None:
        # NoMoreData is what gunicorn's handler takes quietly as "client gone".
        for greenlet in list(self._idle):
            greenlet.kill(NoMoreData(), block=False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        current = gevent.getcurrent()
        self._served[current] = 0
        try:
            if self.cfg.is_ssl:
                client = self._tls_handshake(client, addr)
                if client is None:
                    return
            super().handle(listener, client, addr)
        finally:
            self._served.pop(current, None)
            self._idle.discard(current)

    def _tls_handshake(self, client: Any, addr: Any) -> Any:
        """The TLS socket, or None (logged at debug, socket closed) when the
        client did not complete a handshake within HANDSHAKE_TIMEOUT."""
        tls = None
        try:
            tls = ssl_context(self.cfg).wrap_socket(
                client, server_side=True, do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
            with gevent.Timeout(HANDSHAKE_TIMEOUT, TimeoutError(f"no TLS handshake within {HANDSHAKE_TIMEOUT:g}s")):
                tls.do_handshake()
            return tls
        except OSError as err:  # ssl.SSLError, a reset, or the timeout above
            self.log.debug("TLS handshake with %s not completed: %s", addr, err)
            util.close(tls if tls is not None else client)
            return None

    def timeout_ctx(self) -> Any:
        return self._awaiting_request()

    @contextmanager
    def _awaiting_request(self) -> Iterator[None]:
        """Around gunicorn's wait for a request head: bounded, and known as
        idle so that a stopping worker can close it at once."""
        current = gevent.getcurrent()
        first = self._served.get(current, 0) == 0
        self._idle.add(current)
        try:
            with gevent.Timeout(FIRST_REQUEST_TIMEOUT if first else self.cfg.keepalive, False):
                yield
        finally:
            self._idle.discard(current)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        current = gevent.getcurrent()
        self._served[current] = self._served.get(current, 0) + 1
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            # Let every other connection with a request waiting go first. A
            # kept-alive client that sends its next request as soon as it has
            # an answer (the API server in a burst, wrk) has it buffered before
            # this greenlet reads again, so the read never blocks and never
            # yields: that connection was served over and over while the
            # worker's others waited, up to 0.8 s (docs/benchmarks.md).
            # gevent.idle, not sleep(0): a sleep(0) greenlet resumes before the
            # loop polls for I/O.
            gevent.idle()


class BodyDeadline:
    """WSGI middleware: the request body must arrive within SECONDS of the
    request head. A read still waiting then raises BodyTimeout, which the app
    answers (webhook.server.body.read_review) like a client that went away.

    Also: an answer to a request whose body could not be read to its end (bad
    chunked framing, the deadline) says `Connection: close`, which it is:
    gunicorn closes such a connection after the answer, since where the next
    request would start is unknown."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"]
        environ["wsgi.input"] = _DeadlineInput(body, time.monotonic() + self.seconds, self.seconds)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            response = getattr(start_response, "__self__", None)  # gunicorn's Response
            if getattr(body, "failed", False) is True and hasattr(response, "force_close"):
                response.force_close()
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class _DeadlineInput:
    def __init__(self, stream: Any, deadline: float, seconds: float) -> None:
        self._stream, self._deadline, self._seconds = stream, deadline, seconds

    def _bounded(self, method: str, *args: Any) -> Any:
        error = BodyTimeout(f"request body not received within {self._seconds:g}s")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error
        with gevent.Timeout(remaining, error):
            return getattr(self._stream, method)(*args)

    def read(self, size: int | None = -1) -> bytes:
        return self._bounded("read", size)  # type: ignore[no-any-return]

    def readline(self, size: int | None = -1) -> bytes:
        return self._bounded("readline", size)  # type: ignore[no-any-return]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return self._bounded("readlines", hint)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _point_urllib3_at_patched_ssl() -> None:
    import ssl

    original = monkey.get_original("ssl", "SSLContext")
    if ssl.SSLContext is original:
        return
    for name in ("urllib3.util.ssl_", "urllib3.util"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "SSLContext", None) is original:
            module.SSLContext = ssl.SSLContext  # type: ignore[attr-defined]
