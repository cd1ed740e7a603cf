"""A second admission webhook for the tests, on loopback over TLS: another
team's webhook that the real API server calls beside ours (a mesh injector, a
gate that holds requests). The test gives what it answers."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from webhook.certs import x509

# request of an AdmissionReview -> what its response holds besides uid and allowed: True
Answer = Callable[[dict[str, Any]], dict[str, Any]]


class LoopbackWebhook:
    def __init__(self, certs: Path, answer: Answer) -> None:
        x509.generate(certs)  # a CA and a serving certificate valid for 127.0.0.1
        self.ca = (certs / "ca.crt").read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                response = {"uid": request["uid"], "allowed": True, **answer(request)}
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": response}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(certs / "tls.crt"), str(certs / "tls.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client_config(self, path: str) -> dict[str, str]:
        """What a webhook configuration names to reach it."""
        return {"url": f"https://127.0.0.1:{self.server.server_address[1]}{path}",
                "caBundle": base64.b64encode(self.ca).decode()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
