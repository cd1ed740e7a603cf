"""An HTTPS server on 127.0.0.1 that speaks the Kubernetes REST protocol for
the tests, with the real `kubernetes` client pointed at it.

Paths are the API server's: `/api/v1[/namespaces/NS]/RESOURCE[/NAME]` and
`/apis/GROUP/VERSION[/namespaces/NS]/RESOURCE[/NAME]`, for any resource; the
verbs and their answers are in tests/fakes/rest.py. A request without the
kubeconfig's bearer token gets 401, so a test that passes proves the client
authenticated. Every request is recorded (`requests`, `count`).

Misbehaviour comes from one rule engine (tests/fakes/faults.py): `slow`,
`forbid`, `fail`, `drop` (hang up without an answer), `truncate` (hang up
halfway through the body), each for every match or the next TIMES; `before`
runs a hook before a request is answered, to stage a race.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, NamedTuple

import yaml

from tests.fakes.faults import Faults, Rule
from tests.fakes.kubeconfig import write_kubeconfig
from tests.fakes.rest import KINDS, Store, injected, now, parse_path, status
from webhook.certs import x509

TOKEN = "fake-token-for-tests"


class Request(NamedTuple):
    method: str
    path: str
    authorization: str


class FakeApiServer(Store):
    def __init__(self, workdir: Path | None = None, token: str = TOKEN) -> None:
        super().__init__()
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="fake-apiserver-")
        self.dir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.dir.mkdir(parents=True, exist_ok=True)
        ca = x509.make_ca("fake-apiserver-ca")
        x509.write_files(self.dir, ca, x509.make_serving(ca, ["localhost"]))
        self.ca_file = self.dir / "ca.crt"
        self.token = token
        self.requests: list[Request] = []
        self.faults = Faults()
        self.before: Callable[[str, str], None] | None = None
        self.closing = threading.Event()  # wakes handlers sleeping in a "delay" rule
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.dir / "tls.crt", self.dir / "tls.key")
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-apiserver", daemon=True).start()

    def __enter__(self) -> FakeApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        return write_kubeconfig(path, self.url, self.ca_file, token or self.token)

    def seed_manifests(self, path: Path) -> None:
        """Loads every object of a kind it knows from a manifest file."""
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in KINDS:
                resource, namespaced = KINDS[doc["kind"]]
                self.put(resource, doc, doc["metadata"].get("namespace", "default") if namespaced else "")

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.put("namespaces", {
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})

    def add_pvc(self, namespace: str, name: str, request: str, modes: tuple[str, ...] = ("ReadWriteMany",),
                phase: str = "Bound", capacity: str | None = None, deleting: bool = False) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        obj: dict[str, Any] = {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": {"name": name, "uid": uid},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": request}},
                     "storageClassName": "nfs-client", "volumeMode": "Filesystem"},
            "status": {"phase": phase},
        }
        if phase == "Bound":
            obj["spec"]["volumeName"] = f"pvc-{uid}"
            obj["status"].update({"accessModes": list(modes), "capacity": {"storage": capacity or request}})
        if deleting:
            obj["metadata"].update(deletionTimestamp=now(), finalizers=["kubernetes.io/pvc-protection"])
        return self.put("persistentvolumeclaims", obj, namespace)

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
        return self.put("secrets", {
            "kind": "Secret", "apiVersion": "v1", "metadata": {"name": name}, "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}, namespace)

    # --- misbehaviour: each rule for requests whose path matches PATH_REGEX; WHEN
    # narrows it: method="GET", times=N (the next N matches only) -------------------

    def slow(self, path_regex: str, seconds: float, **when: Any) -> Rule:
        return self.faults.add(path_regex, "delay", seconds=seconds, **when)

    def fail(self, path_regex: str, code: int, **when: Any) -> Rule:
        return self.faults.add(path_regex, "status", code=code, **when)

    def forbid(self, path_regex: str, **when: Any) -> Rule:
        return self.fail(path_regex, 403, **when)

    def drop(self, path_regex: str, **when: Any) -> Rule:
        return self.faults.add(path_regex, "drop", **when)

    def truncate(self, path_regex: str, **when: Any) -> Rule:
        """Answer with the full Content-Length, send half the body, hang up."""
        return self.faults.add(path_regex, "truncate", **when)

    def heal(self) -> None:
        self.faults.clear()

    def count(self, path_regex: str = "", method: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if (method is None or r.method == method)
                       and re.search(path_regex, r.path))

def _handler(fake: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API server
        # One write per answer and no Nagle, as Go's net/http: otherwise headers
        # and body go in two segments and the client's delayed ACK adds 40 ms.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _send(self, code: int, body: dict[str, Any], truncate: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if truncate else data)
            if truncate:
                self._hang_up()

        def _hang_up(self) -> None:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _dispatch(self) -> None:
            method, path = self.command, self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            auth = self.headers.get("Authorization", "")
            with fake.lock:
                fake.requests.append(Request(method, path, auth))
            rules = fake.faults.take(method, path)
            if "delay" in rules:
                fake.closing.wait(rules["delay"].seconds)
            if "drop" in rules:
                return self._hang_up()
            if auth != f"Bearer {fake.token}":
                return self._send(401, status(401, "Unauthorized"))
            target = parse_path(path)
            if target is None:
                return self._send(404, status(404, "the server could not find the requested resource"))
            if "status" in rules:
                code = rules["status"].code
                return self._send(code, injected(code, method, target))
            if fake.before is not None:
                fake.before(method, path)
            with fake.lock:
                content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
                code, answer = fake.answer(method, target, body, content_type)
            self._send(code, answer, truncate="truncate" in rules and code < 300)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 - http.server's naming

    return Handler
