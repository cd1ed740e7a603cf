"""A local HTTPS server that answers like the Kubernetes API server for the reads
the validating webhook makes (webhook/cluster.py):

  GET /api/v1/namespaces/{ns}/persistentvolumeclaims/{name}
  GET /api/v1/namespaces/{ns}/secrets/{name}
  GET /api/v1/namespaces/{name}

Objects are shaped as in the API reference (kind, apiVersion, metadata with
resourceVersion and uid, spec, status); errors are `Status` objects (NotFound,
Forbidden with the API server's own message, Unauthorized). Requests without the
kubeconfig's bearer token get 401, so a test passing proves the real client
authenticated. Tests can make a path slow (`slow`), forbidden (`forbid`), or
drop the connection without an answer (`drop`) or halfway through the body
(`truncate`), and read what was asked
(`requests`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from webhook.certs import x509 as certs

TOKEN = "fake-token-for-tests"
SERVICE_ACCOUNT = "system:serviceaccount:model-cache:model-cache"
_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)(?:/(?P<resource>persistentvolumeclaims|secrets)/(?P<name>[^/]+))?$")
_KIND = {"persistentvolumeclaims": "PersistentVolumeClaim", "secrets": "Secret", "namespaces": "Namespace"}


def status(code: int, reason: str, message: str, kind: str = "", name: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if name:
        body["details"] = {"name": name, "kind": kind}
    return body


@dataclass
class _Rule:
    pattern: re.Pattern[str]
    delay: float = 0.0
    code: int | None = None
    drop: bool = False
    truncate: bool = False


class FakeApiServer:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        ca = certs.make_ca("fake-apiserver-ca")
        certs.write_files(workdir, ca, certs.make_serving(ca, ["localhost"]))
        self.objects: dict[str, dict[str, Any]] = {}  # URL path -> object
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.auth_headers: list[str] = []
        self._rules: list[_Rule] = []
        self._rv = 1000
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(workdir / "tls.crt", workdir / "tls.key")
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-apiserver", daemon=True)
        self._thread.start()

    # --- setup ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, token: str = TOKEN) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url, "certificate-authority": str(self.dir / "ca.crt")}}],
            "users": [{"name": "webhook", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "webhook"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def _meta(self, name: str, namespace: str | None) -> dict[str, Any]:
        self._rv += 1
        meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": str(self._rv),
                                "creationTimestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if namespace is not None:
            meta["namespace"] = namespace
        return meta

    def add_pvc(self, namespace: str, name: str, request: str, modes: tuple[str, ...] = ("ReadWriteMany",),
                phase: str = "Bound", capacity: str | None = None, deleting: bool = False) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": self._meta(name, namespace),
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": request}},
                     "storageClassName": "nfs-client", "volumeMode": "Filesystem"},
            "status": {"phase": phase},
        }
        if phase == "Bound":
            obj["spec"]["volumeName"] = f"pvc-{obj['metadata']['uid']}"
            obj["status"].update({"accessModes": list(modes), "capacity": {"storage": capacity or request}})
        if deleting:
            obj["metadata"]["deletionTimestamp"] = obj["metadata"]["creationTimestamp"]
            obj["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
        with self._lock:
            self.objects[f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"] = obj
        return obj

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
        obj = {
            "kind": "Secret", "apiVersion": "v1", "metadata": self._meta(name, namespace), "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        with self._lock:
            self.objects[f"/api/v1/namespaces/{namespace}/secrets/{name}"] = obj
        return obj

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        meta = self._meta(name, None)
        meta["labels"] = {"kubernetes.io/metadata.name": name, **(labels or {})}
        obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": meta,
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        with self._lock:
            self.objects[f"/api/v1/namespaces/{name}"] = obj
        return obj

    def remove(self, path: str) -> None:
        with self._lock:
            self.objects.pop(path, None)

    # --- misbehaviour ------------------------------------------------------------------

    def slow(self, path_regex: str, seconds: float) -> None:
        with self._lock:
            self._rules.append(_Rule(re.compile(path_regex), delay=seconds))

    def forbid(self, path_regex: str) -> None:
        with self._lock:
            self._rules.append(_Rule(re.compile(path_regex), code=403))

    def fail(self, path_regex: str, code: int) -> None:
        with self._lock:
            self._rules.append(_Rule(re.compile(path_regex), code=code))

    def drop(self, path_regex: str) -> None:
        with self._lock:
            self._rules.append(_Rule(re.compile(path_regex), drop=True))

    def truncate(self, path_regex: str) -> None:
        """Answer 200 with the full Content-Length, send half the body, hang up."""
        with self._lock:
            self._rules.append(_Rule(re.compile(path_regex), truncate=True))

    def heal(self) -> None:
        with self._lock:
            self._rules.clear()

    def count(self, path_fragment: str) -> int:
        with self._lock:
            return sum(1 for _, p in self.requests if path_fragment in p)

    def close(self) -> None:
        self._stop.set()  # wakes handlers sleeping in `slow`
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- the handler -------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API server
            # One write per answer and no Nagle, as Go's net/http: otherwise headers
            # and body go in two segments and the client's delayed ACK adds 40 ms.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(("GET", path))
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    rules = [r for r in server._rules if r.pattern.search(path)]
                    obj = server.objects.get(path)
                for rule in rules:
                    if rule.delay:
                        server._stop.wait(rule.delay)
                    if rule.drop:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, status(401, "Unauthorized", "Unauthorized"))
                    return
                m = _PATH.match(path)
                resource = (m.group("resource") if m else None) or "namespaces"
                name = (m.group("name") if m else None) or (m.group("ns") if m else "")
                code = next((r.code for r in rules if r.code), None)
                if code == 403:
                    where = f' in the namespace "{m.group("ns")}"' if m and m.group("resource") else ""
                    self._send(403, status(403, "Forbidden", (
                        f'{resource} "{name}" is forbidden: User "{SERVICE_ACCOUNT}" cannot get resource '
                        f'"{resource}" in API group ""{where}'), resource, name))
                    return
                if code:
                    self._send(code, status(code, "InternalError", "etcdserver: request timed out"))
                    return
                if obj is None or m is None:
                    self._send(404, status(404, "NotFound", f'{resource} "{name}" not found', resource, name))
                    return
                if any(r.truncate for r in rules):
                    data = json.dumps(obj).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(200, obj)

        return Handler
