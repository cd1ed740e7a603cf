"""A stand-in for the Kubernetes API server for the /validate benchmark: HTTPS
on 127.0.0.1, GET only, each object served as fixed JSON at its API path,
`Status` NotFound elsewhere, 401 without the bearer token.

Deliberately not tests/fakes/apiserver.py (bench/ does not import tests/):
the benchmark needs no writes and no fault rules, only answers that cost the
server as little as possible, so the numbers are the webhook's.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from webhook.certs import x509

TOKEN = "bench-token"


class ApiServerStub:
    def __init__(self, workdir: Path, objects: dict[str, dict[str, Any]]) -> None:
        """OBJECTS: API path (/api/v1/namespaces/NS/secrets/NAME, ...) -> object."""
        ca = x509.make_ca("bench-apiserver-ca")
        x509.write_files(workdir, ca, x509.make_serving(ca, ["localhost"]))
        self.ca_file = workdir / "ca.crt"
        self.bodies = {path: json.dumps(obj).encode() for path, obj in objects.items()}
        self.gets = 0
        self._count_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(workdir / "tls.crt", workdir / "tls.key")
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def kubeconfig(self, path: Path) -> Path:
        cluster = {"server": self.url, "certificate-authority": str(self.ca_file)}
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "bench",
            "clusters": [{"name": "bench", "cluster": cluster}], "users": [{"name": "bench", "user": {"token": TOKEN}}],
            "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}]}))
        return path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API server
            wbufsize = 1 << 16  # headers and body in one write, as Go's net/http
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with stub._count_lock:
                    stub.gets += 1
                path = self.path.split("?", 1)[0]
                code, data = 200, stub.bodies.get(path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    code, data = 401, _status(401, "Unauthorized", "Unauthorized")
                elif data is None:
                    code, data = 404, _status(404, "NotFound", f"{path.rsplit('/', 1)[-1]} not found")
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()
