"""The server's TLS context: TLS 1.2 or newer, reloaded when the files change.

The worker (worker.py, and gunicorn's gthread) asks the `ssl_context` hook
for a context on every new connection. Building one costs a key load, so it is
cached per process and rebuilt only when the certificate or key file changes
(a Secret update, a rotation by certs.manager). Connections already open keep
the context they were made with, so no request fails during a rotation.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
FIRST_LOAD_PATIENCE = 5.0


def build_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _fingerprint(*paths: str) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class ReloadingContext:
    """An SSLContext that follows its files. A half-written pair (new cert, old
    key) fails to load: the old context stays until the pair matches again."""

    def __init__(self, certfile: str, keyfile: str, interval: float = CHECK_INTERVAL) -> None:
        self.certfile, self.keyfile, self.interval = certfile, keyfile, interval
        self._lock = threading.Lock()
        self._fingerprint, self._context = self._first_load()
        self._checked = time.monotonic()

    def _first_load(self) -> tuple[tuple[tuple[int, int, int], ...], ssl.SSLContext]:
        """A worker builds its first context on its first connection, which
        may fall in the instant between a rotation's key and certificate
        writes (or a worker restarted mid-rotation). There is no old context
        to keep then, so wait for the pair to match again instead of failing
        the connection; the writer finishes in microseconds."""
        deadline = time.monotonic() + FIRST_LOAD_PATIENCE
        while True:
            try:
                fingerprint = _fingerprint(self.certfile, self.keyfile)
                return fingerprint, build_context(self.certfile, self.keyfile)
            except (ssl.SSLError, ValueError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def get(self) -> ssl.SSLContext:
        if time.monotonic() - self._checked >= self.interval and self._lock.acquire(blocking=False):
            try:
                self._checked = time.monotonic()
                self._reload_if_changed()
            finally:
                self._lock.release()
        return self._context

    def _reload_if_changed(self) -> None:
        try:
            fingerprint = _fingerprint(self.certfile, self.keyfile)
            if fingerprint == self._fingerprint:
                return
            self._context = build_context(self.certfile, self.keyfile)
            self._fingerprint = fingerprint
            log.info("serving certificate reloaded from %s", self.certfile)
        except (OSError, ssl.SSLError, ValueError) as err:
            log.warning("serving certificate not reloaded, keeping the current one: %s", err)


# Keyed by process too: a context made before a fork would be of the class the
# ssl module had then, not the gevent-patched one a worker has since (worker.py).
_contexts: dict[tuple[int, str, str], ReloadingContext] = {}


def gunicorn_ssl_context(conf: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """gunicorn's `ssl_context` hook."""
    key = (os.getpid(), conf.certfile, conf.keyfile)
    holder = _contexts.get(key)
    if holder is None:
        holder = _contexts[key] = ReloadingContext(conf.certfile, conf.keyfile)
    return holder.get()
