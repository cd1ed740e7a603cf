"""An HTTPS server on 127.0.0.1 that answers like the Kubernetes API server
for the paths the certificate manager uses:

  GET/PUT   /api/v1/namespaces/{ns}/secrets/{name}
  POST      /api/v1/namespaces/{ns}/secrets
  GET/PATCH /apis/admissionregistration.k8s.io/v1/{mutating,validating}webhookconfigurations/{name}

Bodies follow the API reference: objects with metadata.resourceVersion,
errors as a `Status` with reason NotFound, AlreadyExists or Conflict.
PATCH takes application/json-patch+json. Tests seed objects, read them back,
and can make the next requests fail (`fail_next`), or run a hook before a
request is answered (`before`) to stage a race.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import ssl
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import jsonpatch
import yaml

from webhook.certs import x509 as certs

GROUP = "/apis/admissionregistration.k8s.io/v1"
KINDS = {
    "mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
    "validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
}


def status(code: int, reason: str, message: str, kind: str, name: str) -> dict[str, Any]:
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {"name": name, "kind": kind}, "code": code,
    }


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self.requests: list[tuple[str, str]] = []
        self.failures: list[tuple[str, str, int]] = []  # (method, path regex, code)
        self.before: Callable[[str, str], None] | None = None
        self._rv = 100
        self.lock = threading.RLock()
        self._dir = tempfile.TemporaryDirectory()
        ca = certs.make_ca("fake-kube-ca")
        serving = certs.make_serving(ca, ["localhost"])
        d = Path(self._dir.name)
        certs.write_files(d, ca, serving)
        self.ca_file = d / "ca.crt"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeKube:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._dir.cleanup()

    # --- what tests use -------------------------------------------------
    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def put(self, resource: str, obj: dict[str, Any], namespace: str = "") -> dict[str, Any]:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = self.next_rv()
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if namespace:
                meta["namespace"] = namespace
            self.objects[(resource, namespace, meta["name"])] = obj
            return copy.deepcopy(obj)

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def seed_manifests(self, path: Path) -> None:
        """Loads the webhook configurations of a manifest file."""
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in KINDS.values():
                resource = next(r for r, k in KINDS.items() if k == doc["kind"])
                self.put(resource, doc)

    def fail_next(self, method: str, path_regex: str, code: int) -> None:
        self.failures.append((method, path_regex, code))

    def count(self, method: str, path_regex: str = "") -> int:
        return sum(1 for m, p in self.requests if m == method and re.search(path_regex, p))


def kubeconfig_for(fake: FakeKube, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": fake.url, "certificate-authority": str(fake.ca_file)}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    return path


SECRET_ONE = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$")
SECRET_COLL = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets$")
WEBHOOK_ONE = re.compile(rf"^{GROUP}/(mutatingwebhookconfigurations|validatingwebhookconfigurations)/([^/]+)$")


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"null")

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            body = self._body() if method in ("POST", "PUT", "PATCH") else None
            if self.headers.get("Authorization") != "Bearer fake-token":
                return self._send(401, status(401, "Unauthorized", "Unauthorized", "", ""))
            with fake.lock:
                fake.requests.append((method, path))
                for i, (m, rx, code) in enumerate(fake.failures):
                    if m == method and re.search(rx, path):
                        del fake.failures[i]
                        return self._send(code, status(code, "InternalError" if code >= 500 else "Forbidden",
                                                       "injected failure", "", ""))
            if fake.before:
                fake.before(method, path)
            with fake.lock:
                self._route(method, path, body)

        def _route(self, method: str, path: str, body: Any) -> None:
            if m := SECRET_ONE.match(path):
                ns, name = m.groups()
                key = ("secrets", ns, name)
                cur = fake.objects.get(key)
                if method == "GET":
                    if cur is None:
                        return self._send(404, status(404, "NotFound", f'secrets "{name}" not found', "secrets", name))
                    return self._send(200, cur)
                if method == "PUT":
                    if cur is None:
                        return self._send(404, status(404, "NotFound", f'secrets "{name}" not found', "secrets", name))
                    rv = (body.get("metadata") or {}).get("resourceVersion")
                    if rv and rv != cur["metadata"]["resourceVersion"]:
                        return self._send(409, status(
                            409, "Conflict",
                            f'Operation cannot be fulfilled on secrets "{name}": the object has been modified; '
                            "please apply your changes to the latest version and try again", "secrets", name))
                    body["metadata"]["uid"] = cur["metadata"]["uid"]
                    body["metadata"]["creationTimestamp"] = cur["metadata"]["creationTimestamp"]
                    return self._send(200, fake.put("secrets", body, ns))
            elif m := SECRET_COLL.match(path):
                ns = m.group(1)
                if method == "POST":
                    name = body["metadata"]["name"]
                    if ("secrets", ns, name) in fake.objects:
                        return self._send(409, status(409, "AlreadyExists", f'secrets "{name}" already exists',
                                                      "secrets", name))
                    return self._send(201, fake.put("secrets", body, ns))
            elif m := WEBHOOK_ONE.match(path):
                resource, name = m.groups()
                key = (resource, "", name)
                cur = fake.objects.get(key)
                if cur is None:
                    return self._send(404, status(404, "NotFound", f'{resource}.admissionregistration.k8s.io '
                                                  f'"{name}" not found', resource, name))
                if method == "GET":
                    return self._send(200, cur)
                if method == "PATCH":
                    if self.headers.get("Content-Type") != "application/json-patch+json":
                        return self._send(415, status(415, "UnsupportedMediaType", "json-patch only here", resource, name))
                    try:
                        new = jsonpatch.apply_patch(cur, body)
                    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                        return self._send(422, status(422, "Invalid", str(err), resource, name))
                    return self._send(200, fake.put(resource, new))
            return self._send(405, status(405, "MethodNotAllowed", f"{method} {path}", "", ""))

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

    return Handler
