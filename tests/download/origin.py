"""A stdlib HTTP origin for the downloader's tests, on 127.0.0.1.

It serves files with Range support and counts every body byte it sends, so
tests can assert "served once". It also answers the Hub endpoints that
huggingface_hub calls (repo info by revision, the recursive tree listing,
resolve URLs), and injects faults: a Range ignored (200), a stall, corrupt
bytes, a body cut half-way, a range served from the wrong offset (with an
honest Content-Range), a throttle, a required token; and sends the headers a
test gives it (a digest, right or wrong).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


SHIFT = 1024  # how much further on a shifted range starts


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubRepo:
    commit: str
    files: dict[str, bytes]
    lfs: set[str] = field(default_factory=set)   # paths served as LFS files (sha256 in the tree)
    revisions: tuple[str, ...] = ("main",)
    private: bool = False                         # needs the token


class Origin:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.files: dict[str, bytes] = {}        # URL path -> bytes
        self.repos: dict[str, HubRepo] = {}      # "org/name" -> repo
        self.served: Counter[str] = Counter()    # URL path -> body bytes sent
        self.gets: Counter[str] = Counter()      # URL path -> GET requests
        self.served_by_range: Counter[tuple[str, str | None]] = Counter()  # (path, Range header) -> bytes
        self.log: list[tuple[str, str, str | None, dict]] = []
        self.token: str | None = None            # required Bearer token for /files
        self.ignore_range = False                # answer Range requests with 200
        self.no_length = False                   # chunked-like: no Content-Length (close-delimited)
        self.no_validator = False                # plain files without ETag (nor Last-Modified)
        self.stall_once: set[str] = set()        # first GET sends half, then hangs
        self.corrupt_gets: Counter[str] = Counter()  # path -> how many GETs still serve flipped bytes
        self.throttle = 0.0                      # seconds of sleep per 64 KiB
        self.gates: dict[str, threading.Event] = {}  # path -> GETs pause half-way until set
        self.stall_at: dict[str, int] = {}      # path -> a GET reaching this offset hangs there (once)
        self.change_after: dict[str, tuple[int, bytes]] = {}  # path -> (bytes served, new content)
        self.busy: dict[str, list[tuple[int, str | None]]] = {}  # path -> next GETs answered (status, Retry-After)
        self.fail_all: int | None = None         # answer every request with this status (counted in `log`)
        self.times: dict[str, list[float]] = {}  # path -> monotonic time of each GET
        self.cdn_host: str | None = None         # LFS resolve URLs redirect to http://<cdn_host>:<port>/cdn/...
        self.extra_headers: dict[str, dict[str, str]] = {}  # path -> headers sent with it (Repr-Digest, Digest)
        self.cut_gets: Counter[str] = Counter()  # path -> GETs still cut after half the body (connection closed)
        self.shift_ranges: Counter[str] = Counter()  # path -> ranged GETs still served from SHIFT bytes further on
        self.lock = threading.Lock()
        self.release_stall = threading.Event()
        # HOST: another address only inside a network namespace a benchmark made (bench/bench_dragonfly.py).
        self.server = ThreadingHTTPServer((host, 0), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Origin":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release_stall.set()
        self.server.shutdown()
        self.server.server_close()

    def total_served(self) -> int:
        with self.lock:
            return sum(self.served.values())

    def reset_counts(self) -> None:
        with self.lock:
            self.served.clear()
            self.served_by_range.clear()
            self.gets.clear()
            self.log.clear()


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_REVISION = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)$")


def _handler(origin: Origin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        # -- helpers ----------------------------------------------------------
        def _json(self, status: int, body, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str | None = None) -> None:
            self._json(status, {"error": code or str(status)}, {"X-Error-Code": code} if code else None)

        def _authorized(self, needed: bool) -> bool:
            if not needed:
                return True
            return self.headers.get("Authorization") == f"Bearer {origin.token}"

        def _repo(self, name: str) -> HubRepo | None:
            repo = origin.repos.get(name)
            if repo is None:
                self._error(401, "RepoNotFound")  # the Hub answers 401 for unknown repos too
                return None
            if not self._authorized(repo.private):
                self._error(401, "RepoNotFound")
                return None
            return repo

        # -- routes -----------------------------------------------------------
        def do_HEAD(self) -> None:
            self.do_GET()

        def do_POST(self) -> None:  # only for fail_all (an S3 client may POST)
            self.do_GET()

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            with origin.lock:
                origin.log.append((self.command, path, self.headers.get("Range"), dict(self.headers)))
                if self.command == "GET":
                    origin.times.setdefault(path, []).append(time.monotonic())
                busy = origin.busy.get(path)
                answer = busy.pop(0) if (busy and self.command == "GET") else None
            if origin.fail_all is not None:
                return self._error(origin.fail_all)
            if answer is not None:
                status, after = answer
                return self._json(status, {"error": "busy"}, {"Retry-After": after} if after else None)
            if m := _REVISION.match(path):
                repo = self._repo(m["repo"])
                if repo is None:
                    return
                if m["rev"] not in repo.revisions and m["rev"] != repo.commit:
                    return self._error(404, "RevisionNotFound")
                return self._json(200, {"id": m["repo"], "modelId": m["repo"], "sha": repo.commit, "private": repo.private,
                                        "siblings": [{"rfilename": p} for p in sorted(repo.files)]})
            if m := _TREE.match(path):
                repo = self._repo(m["repo"])
                if repo is None:
                    return
                if m["rev"] != repo.commit and m["rev"] not in repo.revisions:
                    return self._error(404, "RevisionNotFound")
                entries, dirs = [], set()
                for p, data in sorted(repo.files.items()):
                    parts = p.split("/")
                    for i in range(1, len(parts)):
                        dirs.add("/".join(parts[:i]))
                    e = {"type": "file", "path": p, "size": len(data), "oid": git_blob_sha1(data)}
                    if p in repo.lfs:
                        e["size"] = len(data)
                        e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    entries.append(e)
                entries += [{"type": "directory", "path": d, "oid": "0" * 40} for d in sorted(dirs)]
                return self._json(200, entries)
            if m := _RESOLVE.match(path):
                repo = self._repo(m["repo"])
                if repo is None:
                    return
                if m["rev"] != repo.commit and m["rev"] not in repo.revisions:
                    return self._error(404, "RevisionNotFound")
                data = repo.files.get(m["path"])
                if data is None:
                    return self._error(404, "EntryNotFound")
                if origin.cdn_host and m["path"] in repo.lfs:
                    # Like the Hub: LFS files are served by a CDN on another host.
                    self.send_response(302)
                    self.send_header("Location", f"http://{origin.cdn_host}:{origin.port}/cdn/{m['repo']}/"
                                                 f"{repo.commit}/{m['path']}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = hashlib.sha256(data).hexdigest() if m["path"] in repo.lfs else git_blob_sha1(data)
                return self._send_file(path, data, {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"',
                                                    "X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            if path.startswith("/cdn/"):
                _cdn, org, name, commit, rel = path.split("/", 5)[1:]
                repo = origin.repos.get(f"{org}/{name}")
                data = repo.files.get(rel) if repo is not None and repo.commit == commit else None
                if data is None:
                    return self._error(404)
                return self._send_file(path, data, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"'})
            data = origin.files.get(path)
            if data is None:
                return self._error(404)
            if not self._authorized(origin.token is not None):
                return self._error(401)
            headers = {} if origin.no_validator else {"ETag": f'"{hashlib.md5(data).hexdigest()}"'}
            return self._send_file(path, data, {**headers, **origin.extra_headers.get(path, {})})

        def _send_file(self, path: str, data: bytes, headers: dict[str, str]) -> None:
            start, status = 0, 200
            rng = self.headers.get("Range")
            etag = headers.get("ETag")
            if_match = self.headers.get("If-Match")
            if if_match and if_match != etag:
                return self._error(412, "PreconditionFailed")
            if_range = self.headers.get("If-Range")
            if if_range and if_range != etag:
                rng = None  # RFC 9110: the validator does not match, send the whole (new) content
            if rng and not origin.ignore_range:
                m = re.match(r"bytes=(\d+)-(\d*)$", rng)
                if m:
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(data) - 1
                    if self.command == "GET" and origin.shift_ranges[path] > 0:
                        with origin.lock:
                            origin.shift_ranges[path] -= 1
                        start = min(start + SHIFT, end)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                    body = data[start:end + 1]
            if status == 200:
                body = data
            if self.command == "GET" and origin.corrupt_gets[path] > 0:
                with origin.lock:
                    origin.corrupt_gets[path] -= 1
                body = bytes([body[0] ^ 0xFF]) + body[1:] if body else body
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
            if origin.no_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return
            with origin.lock:
                origin.gets[path] += 1
                cut = origin.cut_gets[path] > 0
                if cut:
                    origin.cut_gets[path] -= 1
                stall = path in origin.stall_once
                origin.stall_once.discard(path)
                gate = origin.gates.get(path)
            view = memoryview(body)
            sent = 0
            stall_at = origin.stall_at.get(path)
            if stall_at is not None and start <= stall_at < start + len(body):
                with origin.lock:
                    origin.stall_at.pop(path, None)
                stall = True
                half = stall_at - start
            else:
                half = len(view) // 2
            try:
                while sent < len(view):
                    if cut and sent >= len(view) // 2:
                        self.close_connection = True
                        return
                    if stall and sent >= half:
                        origin.release_stall.wait(30)  # hang: the client's watchdog must give up
                        self.close_connection = True
                        return
                    if gate is not None and sent >= len(view) // 2:
                        gate.wait(60)
                        gate = None
                    n = min(65536, len(view) - sent)
                    if cut:
                        n = min(n, len(view) // 2 - sent)
                    if stall:
                        n = min(n, half - sent) or n
                    self.wfile.write(view[sent:sent + n])
                    sent += n
                    with origin.lock:
                        origin.served[path] += n
                        origin.served_by_range[(path, self.headers.get("Range"))] += n
                        change = origin.change_after.get(path)
                        if change is not None and origin.served[path] >= change[0]:
                            origin.files[path] = change[1]  # later requests see the new object
                            del origin.change_after[path]
                    if origin.throttle:
                        time.sleep(origin.throttle)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
