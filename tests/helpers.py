"""Shared test helpers: the names tests share (paths, the command), schema
validation, builders of pods, workloads and reviews, a TLS client."""

from __future__ import annotations

import base64
import copy
import http.client
import io
import json
import os
import socket
import ssl
import sys
import tarfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import jsonpatch
import kubernetes_validate
import pytest
import yaml

if TYPE_CHECKING:
    from flask.testing import FlaskClient

REPO = Path(__file__).resolve().parent.parent
# The installed command, beside this interpreter: tests run it as a user does.
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))
POLICIES = REPO / "policies"
# <case>.in.yaml: a realistic pod as the API server sends it; <case>.out.yaml: what it becomes.
GOLDEN = REPO / "tests" / "golden"
# Image volumes with subPath need 1.33; the newest schema the package ships is used too.
SCHEMA_VERSIONS = ("1.33", kubernetes_validate.latest_version())
SERVICE_DNS_NAME = "model-cache.model-cache.svc"
# The webhook configurations as shipped: what the certificate manager patches.
WEBHOOKS_MANIFEST = REPO / "manifests" / "base" / "webhooks.yaml"


def golden_pod(case: str) -> dict[str, Any]:
    """The pod of tests/golden/<CASE>.in.yaml, a fresh copy each call."""
    return yaml.safe_load((GOLDEN / f"{case}.in.yaml").read_text())


def golden_cases() -> list[str]:
    return sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))


def golden_pods() -> list[dict[str, Any]]:
    """The realistic pods of tests/golden/, as the API server sends them."""
    return [golden_pod(case) for case in golden_cases()]


def pod_template(pod: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The pod template of a workload whose pods are POD: its annotations and
    spec, with LABELS (what the workload selects its pods by)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": copy.deepcopy(pod["spec"])}


def deployment(template: dict[str, Any], name: str, *, namespace: str | None = None,
               replicas: int = 3) -> dict[str, Any]:
    """A Deployment NAME of TEMPLATE, selecting its pods by the template's labels
    (as the API server requires); NAMESPACE unset leaves it to the request."""
    metadata: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(template["metadata"]["labels"])},
                     "template": copy.deepcopy(template)}}


def assert_schema_valid(obj: dict[str, Any]) -> None:
    """What `kubernetes-validate --strict` checks, with a short message on failure."""
    for version in SCHEMA_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "/".join(str(p) for p in err.path)
            raise AssertionError(f"not a valid {obj.get('kind')} for Kubernetes {version} at {path}: {err.message}") from None


def pod_review(pod: dict[str, Any], namespace: str | None = None, operation: str = "CREATE",
               kind: str = "Pod", uid: str | None = None, group: str = "", version: str = "v1",
               **extra: Any) -> dict[str, Any]:
    """The AdmissionReview the API server sends for OPERATION on POD (or on any
    object of KIND in GROUP/VERSION); EXTRA sets more request fields
    (oldObject, subResource, dryRun...)."""
    namespace = namespace or (pod.get("metadata") or {}).get("namespace") or "default"
    gvk = {"group": group, "version": version, "kind": kind}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": gvk,
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "requestKind": dict(gvk),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": pod,
        "oldObject": None,
        "dryRun": False,
    }
    request.update(extra)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def post(client: FlaskClient, path: str, body: bytes | Any) -> tuple[int, dict[str, Any]]:
    """POSTs BODY (bytes as they are, anything else as JSON) to the in-process
    app of CLIENT; its status and JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, data=data, content_type="application/json")
    return response.status_code, json.loads(response.data)


def apply_response(pod: dict[str, Any], review_response: dict[str, Any]) -> dict[str, Any]:
    response = review_response["response"]
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(pod, patch)


class TLSClient:
    """HTTP/1.1 over one kept-alive TLS connection to 127.0.0.1, verifying the
    certificate for `server_name` as the API server does for the Service."""

    def __init__(self, port: int, cafile: str | Path, server_name: str = SERVICE_DNS_NAME,
                 context: ssl.SSLContext | None = None) -> None:
        self.context = context or ssl.create_default_context(cafile=str(cafile))
        self.port, self.server_name = port, server_name
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        # http.client writes a POST's headers and body separately: without this,
        # Nagle holds the body until the server's delayed ACK, 40 ms a request.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = self.context.wrap_socket(raw, server_hostname=self.server_name)
        return conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data, dict(resp.getheaders())

    def post_json(self, path: str, obj: Any) -> tuple[int, dict[str, Any]]:
        status, data, _ = self.request("POST", path, json.dumps(obj).encode())
        return status, json.loads(data)

    def close(self) -> None:
        self.conn.close()


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1: for a process that
    must be told its port before it starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cannot_run(reason: str) -> NoReturn:
    """A test whose real part (a cluster, a built tool) this machine does not
    have: a skip with the reason; under CI=true a failure, since CI exists to
    run them (scripts/test builds them all)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, and this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def mark_real_cluster_tests(config: pytest.Config, items: list[pytest.Item], directory: Path, group: str,
                            why_not: Callable[[], str | None]) -> None:
    """The tests under DIRECTORY share one real cluster per pytest session:
    under `--dist loadgroup` they all run on one worker (xdist_group GROUP),
    and where WHY_NOT gives a reason they are `unavailable` (a skip, or a
    failure under CI=true). Call it from the directory's
    pytest_collection_modifyitems with tryfirst=True, before xdist's own hook
    reads the group into the test's id."""
    mine = [i for i in items if directory in Path(i.path).parents]
    if not mine:
        return
    reason = why_not()
    grouped = config.pluginmanager.hasplugin("xdist")  # its marker is unknown under -p no:xdist
    for item in mine:
        if grouped:
            item.add_marker(pytest.mark.xdist_group(group))
        if reason:
            item.add_marker(pytest.mark.unavailable(reason))


def complete_model(root: Path, name: str, size: int, used_ago: float) -> Path:
    """ROOT/NAME/main as the downloader leaves a finished model: one file of
    SIZE bytes and its completion marker, last used USED_AGO seconds ago."""
    dest = root / name / "main"
    dest.mkdir(parents=True)
    (dest / "w.bin").write_bytes(b"x" * size)
    marker = dest / ".model-cache.json"
    marker.write_text(json.dumps({"complete": True, "total_size": size, "files": [{"path": "w.bin", "size": size}]}))
    t = time.time() - used_ago
    os.utime(marker, (t, t))
    return dest


def tar_archive(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """FILES (name -> bytes) as a tar archive, gzip-compressed unless MODE says otherwise."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_archive(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """FILES (name -> bytes) as a zip archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()
