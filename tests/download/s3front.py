"""A misbehaving S3 endpoint for the downloader's tests: a proxy on
127.0.0.1 in front of moto's S3 server that passes every request through
and, on demand, damages the answer the way a broken store or middlebox
would: flipped bytes, a body cut half-way, a ranged read that starts
elsewhere than asked (with an honest Content-Range). The downloader reaches
it with AWS_ENDPOINT_URL and path-style addressing; the tests put their
objects straight into moto."""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class S3Front:
    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.corrupt_gets: Counter[str] = Counter()  # "/bucket/key" -> GETs still answered with a flipped byte
        self.cut_gets: Counter[str] = Counter()      # -> GETs still cut after half the body
        self.shift_ranges: Counter[str] = Counter()  # -> ranged GETs still served from 1 KiB further on
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path with query, Range)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "S3Front":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def take(self, faults: Counter[str], path: str) -> bool:
        with self.lock:
            if faults[path] > 0:
                faults[path] -= 1
                return True
            return False


SHIFT = 1024


def _handler(front: S3Front):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._forward()

        def do_GET(self) -> None:
            self._forward()

        def _forward(self) -> None:
            path = unquote(urlsplit(self.path).path)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            rng = self.headers.get("Range")
            with front.lock:
                front.requests.append((self.command, self.path, rng))
            get = self.command == "GET"
            if get and rng and front.take(front.shift_ranges, path):
                m = re.match(r"bytes=(\d+)-(\d*)$", rng)
                if m:
                    headers["Range"] = f"bytes={int(m.group(1)) + SHIFT}-{m.group(2)}"
            conn = http.client.HTTPConnection(*front.upstream, timeout=30)
            try:
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
                length = resp.getheader("Content-Length")
            finally:
                conn.close()
            if get and body and resp.status in (200, 206) and front.take(front.corrupt_gets, path):
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            cut = get and len(body) > 1 and resp.status in (200, 206) and front.take(front.cut_gets, path)
            self.send_response(resp.status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(body)))
            if cut:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            try:
                if cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
