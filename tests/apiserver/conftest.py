"""A real control plane for the tests in this directory: etcd, kube-apiserver
and kube-controller-manager built from the Go module proxy by scripts/k8s-bins
(tools/k8s-bins/go.mod), started on loopback ports once per pytest session
(per xdist worker), with model-cache installed from manifests/ through
tests/apiserver/overlay and `model-cache serve` running as its ServiceAccount.

Skips with the reason when the binaries were not built (no Go on the machine)
or kubectl (kustomize) is missing. docs/apiserver.md says more.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))
KUBECTL = shutil.which("kubectl")
WEBHOOK_NS = "model-cache"
# Namespaces the overlay gives a policy (a file per namespace in the ConfigMap),
# with their labels; each test works in its own.
TEST_NAMESPACES: dict[str, dict[str, str]] = {
    "strategies": {}, "plain": {}, "warnings": {}, "denials": {}, "deploy": {}, "failure": {},
    "restricted": {"pod-security.kubernetes.io/enforce": "restricted"},
    "baseline": {"pod-security.kubernetes.io/enforce": "baseline"},
}
START_TIMEOUT = 120.0
# Who wrote the TLS Secret and the webhook configurations: the self-managed
# certificate tests read it from the API server's own audit log.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets]
      - group: admissionregistration.k8s.io
        resources: [mutatingwebhookconfigurations, validatingwebhookconfigurations]
  - level: None
"""


def bins_dir() -> Path:
    out = subprocess.run([str(REPO / "scripts" / "k8s-bins"), "--dir"], check=True,
                         capture_output=True, text=True, timeout=30).stdout.strip()
    return Path(out)


def why_not() -> str | None:
    if KUBECTL is None:
        return "kubectl (with its kustomize) is not installed"
    d = bins_dir()
    missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager") if not (d / b).is_file()]
    if missing:
        return (f"{', '.join(missing)} not built in {d}: run scripts/k8s-bins (needs Go; "
                f"scripts/test runs it)")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if HERE in Path(i.path).parents]
    if not mine:
        return
    reason = why_not()
    for item in mine:
        # One control plane per worker: under `--dist loadgroup` they all share one.
        item.add_marker(pytest.mark.xdist_group("apiserver"))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """Ends the whole process group: gunicorn's workers and any child go too."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    with open(log, "wb") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=loopback_env(env))
    return Proc(name, popen, log)


def wait_for(what: str, check: Callable[[], Any], timeout: float = START_TIMEOUT, every: float = 0.2,
             procs: tuple[Proc, ...] = ()) -> Any:
    """Polls check() until it returns something truthy; fails with the logs of procs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited {p.popen.returncode} while waiting for {what}\n{p.tail()}")
        try:
            last = check()
            if last:
                return last
        except (OSError, ApiException, AssertionError, ValueError) as err:
            last = err
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}\n"
                       + "\n".join(p.tail() for p in procs))


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
    }))
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    root: Path
    url: str
    ca: Path
    kubeconfig: Path
    procs: list[Proc] = field(default_factory=list)

    def audit_events(self) -> list[dict[str, Any]]:
        lines = (self.root / "audit.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def api_client(self, kubeconfig: Path | None = None) -> k8s.ApiClient:
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig or self.kubeconfig), client_configuration=cfg,
                                    persist_config=False)
        cfg.proxy = None  # loopback only, whatever proxy the environment names
        return k8s.ApiClient(cfg)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client())

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=loopback_env())
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        """A namespace with its default ServiceAccount (the ServiceAccount
        admission plugin refuses pods until it exists; created here rather than
        waiting for the controller)."""
        core = self.core
        try:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels=labels)))
        except ApiException as err:
            if err.status != 409:
                raise
        try:
            core.create_namespaced_service_account(name, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="default")))
        except ApiException as err:
            if err.status != 409:
                raise
        return name


def _service_account_keys(d: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = d / "sa.key", d / "sa.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    priv.chmod(0o600)
    return priv, pub


def http_get(url: str, ctx: ssl.SSLContext | None = None, token: str | None = None) -> bytes:
    """GET on loopback, never through a proxy the environment may name."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with opener.open(req, timeout=5) as r:
        return r.read()


def _http_ok(url: str, ctx: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    try:
        http_get(url, ctx, token)
        return True
    except urllib.error.HTTPError:
        return False


def loopback_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process that talks only to 127.0.0.1: a proxy the
    environment names (the kubernetes client, kubectl and Go all honour one)
    must not be asked. Per process: os.environ is left alone for other tests."""
    env = {**os.environ, **(extra or {})}
    for var in ("NO_PROXY", "no_proxy"):
        have = [h for h in env.get(var, "").split(",") if h]
        env[var] = ",".join(have + [h for h in ("127.0.0.1", "localhost") if h not in have])
    return env


def start_control_plane(root: Path) -> ControlPlane:
    bins = bins_dir()
    root.mkdir(parents=True, exist_ok=True)
    sa_key, sa_pub = _service_account_keys(root)
    token = secrets.token_hex(16)
    tokens = root / "tokens.csv"
    tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n')
    tokens.chmod(0o600)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    procs: list[Proc] = []
    try:
        etcd = spawn("etcd", [
            str(bins / "etcd"), "--name", "test", "--data-dir", str(root / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
            # A throwaway store: fsync would only slow the tests (and other users of the disk).
            "--unsafe-no-fsync", "--log-level", "warn",
        ], root / "etcd.log")
        procs.append(etcd)
        wait_for("etcd /health", lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), procs=(etcd,))

        certs = root / "apiserver-certs"
        certs.mkdir()
        audit_policy = root / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)
        api = spawn("kube-apiserver", [
            str(bins / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(api_port), "--cert-dir", str(certs),
            "--authorization-mode", "RBAC", "--token-auth-file", str(tokens),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(sa_pub), "--service-account-signing-key-file", str(sa_key),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--audit-policy-file", str(audit_policy), "--audit-log-path", str(root / "audit.log"),
            # The admission plugins on by default stay on (PodSecurity, ServiceAccount,
            # Priority, the two webhook plugins, ...): the point is the real chain.
            "--v", "1",
        ], root / "kube-apiserver.log")
        procs.append(api)
        ca = certs / "apiserver.crt"
        wait_for("kube-apiserver certificate", ca.exists, procs=(api,))
        ctx = ssl.create_default_context(cafile=str(ca))
        url = f"https://127.0.0.1:{api_port}"
        wait_for("kube-apiserver /readyz", lambda: _http_ok(f"{url}/readyz", ctx, token), procs=(api, etcd))
        kubeconfig = write_kubeconfig(root / "admin.kubeconfig", url, ca, token, "admin")

        kcm = spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"),
            "--kubeconfig", str(kubeconfig),
            "--authentication-kubeconfig", str(kubeconfig), "--authorization-kubeconfig", str(kubeconfig),
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--cert-dir", str(root / "kcm-certs"),
            "--leader-elect=false",
            "--controllers", "deployment-controller,replicaset-controller,serviceaccount-controller,"
                             "namespace-controller,garbage-collector-controller",
            "--service-account-private-key-file", str(sa_key),
            "--v", "1",
        ], root / "kube-controller-manager.log")
        procs.append(kcm)
        return ControlPlane(root, url, ca, kubeconfig, procs)
    except BaseException:
        for p in reversed(procs):
            p.stop()
        raise


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path_factory.mktemp("control-plane"))
    try:
        yield cp
    finally:
        for p in reversed(cp.procs):
            p.stop()


@dataclass
class Webhook:
    """`model-cache serve` as the Deployment runs it (self-managed certificates,
    its ServiceAccount's credentials), outside the cluster on a loopback port."""

    cp: ControlPlane
    root: Path
    port: int
    sa_kubeconfig: Path
    install_output: str
    proc: Proc | None = None

    @property
    def cafile(self) -> Path:
        return self.root / "tls" / "ca.crt"

    def start(self) -> None:
        policies = self.root / "policies"
        cmd = [MODEL_CACHE, "serve", "--policies", str(policies),
               "--cert", str(self.root / "tls" / "tls.crt"), "--key", str(self.root / "tls" / "tls.key"),
               "--port", str(self.port), "--host", "127.0.0.1", "--workers", "2",
               "--tls-secret", "model-cache-tls", "--tls-namespace", WEBHOOK_NS, "--tls-service", "model-cache",
               "--cert-check-interval", "1"]
        self.proc = spawn("model-cache serve", cmd, self.root / f"serve-{int(time.time() * 1000)}.log",
                          env={"MODEL_CACHE_KUBECONFIG": str(self.sa_kubeconfig)})
        wait_for("model-cache /readyz", lambda: self.cafile.exists()
                 and _http_ok(f"https://127.0.0.1:{self.port}/readyz", ssl.create_default_context(cafile=str(self.cafile))),
                 procs=(self.proc,), timeout=60)
        wait_for("caBundle patched into every webhook", self.cabundles_patched, procs=(self.proc,), timeout=60)
        # The API server's webhook client picks up a changed configuration
        # asynchronously: admission must really go through before tests start.
        wait_for("the API server admitting through the webhook", self._admission_works, procs=(self.proc,), timeout=60)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def cabundles_patched(self) -> bool:
        adm = k8s.AdmissionregistrationV1Api(self.cp.api_client())
        hooks = (adm.read_mutating_webhook_configuration("model-cache").webhooks
                 + adm.read_validating_webhook_configuration("model-cache").webhooks)
        return all(h.client_config.ca_bundle for h in hooks)

    def _admission_works(self) -> bool:
        pod = simple_pod("probe", annotations={"model.cache/name": "tiny"})
        resp = self.cp.core.create_namespaced_pod("plain", pod, dry_run="All", _preload_content=False)
        return json.loads(resp.data)["metadata"]["annotations"].get("model.cache/injected", "").startswith("pvc/")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        ctx = ssl.create_default_context(cafile=str(self.cafile))
        text = http_get(f"https://127.0.0.1:{self.port}/metrics", ctx).decode()
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def reviews(self, endpoint: str | None = None) -> float:
        """model_cache_reviews_total summed over its labels (one endpoint, or all)."""
        return sum(v for (name, labels), v in self.metrics().items()
                   if name == "model_cache_reviews_total" and (endpoint is None or ("endpoint", endpoint) in labels))

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("serve-*.log")))


def simple_pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A plain pod dict; restricted-compliant, so it passes every Pod Security level on its own."""
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "server", "image": "registry.example.com/server:1.0",
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }
    pod["spec"].update(spec)
    return pod


def service_account_token(cp: ControlPlane, namespace: str, name: str, seconds: int = 3600) -> str:
    """A token of the ServiceAccount through the TokenRequest API, as the kubelet gets one for a pod."""
    req = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    return cp.core.create_namespaced_service_account_token(name, namespace, req).status.token


def render_overlay(port: int) -> str:
    out = subprocess.run([KUBECTL or "kubectl", "kustomize", str(HERE / "overlay")], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return out.replace("WEBHOOK_PORT", str(port))


@pytest.fixture(scope="session")
def webhook(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    cp = control_plane
    root = tmp_path_factory.mktemp("webhook")
    port = free_port()
    # As an operator installs it (kubectl apply), onto the real API server.
    applied = cp.kubectl("apply", "-f", "-", input=render_overlay(port), timeout=120)
    for ns, labels in TEST_NAMESPACES.items():
        cp.namespace(ns, labels)
    token = service_account_token(cp, WEBHOOK_NS, "model-cache")
    sa_kubeconfig = write_kubeconfig(root / "sa.kubeconfig", cp.url, cp.ca, token, "system:serviceaccount:model-cache:model-cache")
    # What the kubelet would mount from the ConfigMap: its keys as files.
    policies = root / "policies"
    policies.mkdir()
    cm = cp.core.read_namespaced_config_map("model-cache-policies", WEBHOOK_NS)
    for key, value in (cm.data or {}).items():
        (policies / key).write_text(value)
    hook = Webhook(cp, root, port, sa_kubeconfig, applied.stdout + applied.stderr)
    hook.start()
    try:
        yield hook
    finally:
        hook.stop()


def created_with_headers(api: k8s.ApiClient, namespace: str, pod: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Creates a pod; returns it as stored (a plain dict) and the Warning headers of the answer."""
    resp = k8s.CoreV1Api(api).create_namespaced_pod(namespace, pod, _preload_content=False)
    body = json.loads(resp.data)
    return body, warnings_of(resp.headers)


def warnings_of(headers: Any) -> list[str]:
    """The text of each `Warning: 299 - "..."` header (RFC 7234 form the API server uses)."""
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else [headers.get("Warning", "")]
    out = []
    for value in values:
        for part in _split_warning_header(value):
            out.append(part)
    return out


def _split_warning_header(value: str) -> list[str]:
    # Several warnings may share one header, comma-separated; each is 299 - "text".
    out, i = [], 0
    while True:
        start = value.find('"', i)
        if start < 0:
            return out
        j, text = start + 1, []
        while j < len(value) and value[j] != '"':
            if value[j] == "\\" and j + 1 < len(value):
                j += 1
            text.append(value[j])
            j += 1
        out.append("".join(text))
        i = j + 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
