"""A fast loopback origin for the downloader benchmark: serves a directory
over HTTP/1.1 with Range support and os.sendfile (so that the origin is not
the bottleneck), answers the Hub endpoints huggingface_hub calls for one
repo (`bench/model`), and counts the body bytes it sends.

    python bench/download_origin.py DIR PORT     # prints "ready" when serving
    curl http://127.0.0.1:PORT/_stats            # {"served": N}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "b" * 40
REPO = "bench/model"


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while buf := f.read(1 << 20):
            h.update(buf)
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while buf := f.read(1 << 20):
            h.update(buf)
    return h.hexdigest()


def build_tree(root: Path) -> list[dict]:
    entries = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        e = {"type": "file", "path": rel, "size": p.stat().st_size, "oid": git_blob_sha1(p)}
        if p.stat().st_size > 10 * 1024 * 1024:  # like the Hub: big files are LFS, with their sha256
            e["lfs"] = {"oid": sha256(p), "size": p.stat().st_size, "pointerSize": 134}
        entries.append(e)
    return entries


def serve(root: Path, port: int) -> None:
    tree = build_tree(root)
    stats = {"served": 0}
    lock = threading.Lock()
    resolve = re.compile(rf"^/{REPO}/resolve/[^/]+/(?P<path>.+)$")

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a) -> None:
            pass

        def _json(self, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path == "/_stats":
                return self._json(stats)
            if path == "/_reset":
                with lock:
                    stats["served"] = 0
                return self._json(stats)
            if path == f"/api/models/{REPO}/revision/main" or path == f"/api/models/{REPO}/revision/{COMMIT}":
                return self._json({"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": e["path"]} for e in tree]})
            if path.startswith(f"/api/models/{REPO}/tree/"):
                return self._json(tree)
            m = resolve.match(path)
            rel = m["path"] if m else path.lstrip("/")
            f = (root / rel).resolve()
            if not str(f).startswith(str(root)) or not f.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = f.stat().st_size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng and (r := re.match(r"bytes=(\d+)-(\d*)$", rng)):
                start = int(r.group(1))
                end = int(r.group(2)) if r.group(2) else size - 1
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{f.stat().st_mtime_ns:x}-{size:x}"')
            if m:
                self.send_header("X-Repo-Commit", COMMIT)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.flush()
            with open(f, "rb") as fh:
                sent = 0
                want = end - start + 1
                try:
                    while sent < want:
                        n = os.sendfile(self.connection.fileno(), fh.fileno(), start + sent, min(want - sent, 1 << 24))
                        if n == 0:
                            break
                        sent += n
                finally:
                    with lock:
                        stats["served"] += sent

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]).resolve(), int(sys.argv[2]))
