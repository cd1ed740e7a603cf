"""A fast loopback origin for the downloader benchmark: serves a directory
over HTTP/1.1 with Range support and os.sendfile (so that the origin is not
the bottleneck), answers the Hub endpoints huggingface_hub calls for one
repo (`bench/model`), the S3 calls boto3 makes for a path-style bucket
`s3bucket` holding the same directory (ListObjectsV2, HeadObject, GetObject
with Range and If-Match; signatures are not checked), and counts the body
bytes it sends.

    python bench/download_origin.py DIR PORT [SNDBUF_KIB]   # prints "ready" when serving
    curl http://127.0.0.1:PORT/_stats            # {"served": N}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
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


BUCKET = "s3bucket"


def etag_of(f: Path) -> str:
    st = f.stat()
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def list_xml(root: Path, prefix: str) -> bytes:
    from xml.sax.saxutils import escape

    items = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or not rel.startswith(prefix) or p.name == ".done":
            continue
        items.append(f"<Contents><Key>{escape(rel)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                     f"<ETag>{escape(etag_of(p))}</ETag><Size>{p.stat().st_size}</Size>"
                     f"<StorageClass>STANDARD</StorageClass></Contents>")
    return ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{BUCKET}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(items)}</KeyCount>"
            f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{''.join(items)}</ListBucketResult>").encode()


def serve(root: Path, port: int, sndbuf: int = 0) -> None:
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
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            if path.rstrip("/") == f"/{BUCKET}":
                from urllib.parse import parse_qs

                q = parse_qs(parts.query)
                data = list_xml(root, q.get("prefix", [""])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(data)
                return
            s3 = path.startswith(f"/{BUCKET}/")
            if s3:
                path = path[len(BUCKET) + 1:]
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
            etag = etag_of(f)
            if s3 and self.headers.get("If-Match") not in (None, etag):
                self.send_response(412)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng and (r := re.match(r"bytes=(\d+)-(\d*)$", rng)):
                start = int(r.group(1))
                end = int(r.group(2)) if r.group(2) else size - 1
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            if s3:
                self.send_header("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT")
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

    class Server(ThreadingHTTPServer):
        request_queue_size = 256

        def get_request(self):  # noqa: ANN202
            conn, addr = super().get_request()
            if sndbuf:
                # Bounded send buffer (throttled runs): the bytes counted as
                # served are nearly the bytes that left, not megabytes parked
                # in a socket.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            return conn, addr

    srv = Server(("127.0.0.1", port), H)
    srv.daemon_threads = True
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]).resolve(), int(sys.argv[2]), int(sys.argv[3]) * 1024 if len(sys.argv) > 3 else 0)
