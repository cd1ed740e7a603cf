"""etcd, kube-apiserver and kube-controller-manager as processes on loopback
ports (the binaries scripts/k8s-bins builds), and the little it takes to talk
to them: a kubeconfig, the kubernetes client, kubectl."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.helpers import REPO, free_port

KUBECTL = shutil.which("kubectl")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
NODE_NAME = socket.gethostname().lower()
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


def why_not() -> str | None:
    """Why the control plane cannot run here, or None when it can."""
    if KUBECTL is None:
        return "kubectl (with its kustomize) is not installed"
    d = bins_dir()
    missing = [b for b in BINARIES if not (d / b).is_file()]
    if missing:
        why = "Go is not installed" if shutil.which("go") is None else "run scripts/k8s-bins (scripts/test does)"
        return f"{', '.join(missing)} not built in {d}: {why}"
    return None


def bins_dir() -> Path:
    out = subprocess.run([str(REPO / "scripts" / "k8s-bins"), "--dir"], check=True,
                         capture_output=True, text=True, timeout=30).stdout.strip()
    return Path(out)


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
    kubelet_token: str = ""
    # node name -> the token of its kubelet (system:node:<name>)
    kubelet_tokens: dict[str, str] = field(default_factory=dict)

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


def start_control_plane(root: Path, controller_manager_flags: tuple[str, ...] = (),
                        node_names: tuple[str, ...] = (NODE_NAME,)) -> ControlPlane:
    """CONTROLLER_MANAGER_FLAGS are added to kube-controller-manager's command
    (bench/bench_apiserver.py raises its client rate limits). NODE_NAMES get a
    kubelet token each; names other than this machine's resolve to 127.0.0.1
    for the API server alone (a private /etc/hosts in its own mount
    namespace), so that logs and exec reach each kubelet on loopback."""
    bins = bins_dir()
    root.mkdir(parents=True, exist_ok=True)
    sa_key, sa_pub = _service_account_keys(root)
    token = secrets.token_hex(16)
    tokens = root / "tokens.csv"
    # The kubelet of tests/node is user system:node:<hostname> in group system:nodes.
    kubelet_tokens = {name: secrets.token_hex(16) for name in node_names}
    tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n' + "".join(
        f'{t},system:node:{name},node-{name}-uid,"system:nodes"\n' for name, t in kubelet_tokens.items()))
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
            *_with_hosts(root, [n for n in node_names if n != NODE_NAME]),
            str(bins / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(api_port), "--cert-dir", str(certs),
            "--authorization-mode", "RBAC", "--token-auth-file", str(tokens),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(sa_pub), "--service-account-signing-key-file", str(sa_key),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--audit-policy-file", str(audit_policy), "--audit-log-path", str(root / "audit.log"),
            # kubectl logs/exec reach the kubelet of tests/node by its hostname,
            # which /etc/hosts puts on 127.0.0.1 (its InternalIP is eth0's).
            "--kubelet-preferred-address-types", "Hostname,InternalIP",
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
            # For tests/node: node-lifecycle lifts the not-ready taint a new node
            # gets, root-ca-certificate-publisher makes the kube-root-ca.crt that
            # token mounts need, persistentvolume-binder binds claims, and the
            # workload controllers run the templates the webhook serves.
            "--controllers", "deployment-controller,replicaset-controller,serviceaccount-controller,"
                             "namespace-controller,garbage-collector-controller,node-lifecycle-controller,"
                             "root-ca-certificate-publisher-controller,persistentvolume-binder-controller,"
                             "statefulset-controller,daemonset-controller,job-controller,cronjob-controller",
            "--root-ca-file", str(ca),
            "--v", "1",
            *controller_manager_flags,
        ], root / "kube-controller-manager.log")
        procs.append(kcm)
        return ControlPlane(root, url, ca, kubeconfig, procs, kubelet_token=next(iter(kubelet_tokens.values()), ""),
                            kubelet_tokens=kubelet_tokens)
    except BaseException:
        for p in reversed(procs):
            p.stop()
        raise


def _with_hosts(root: Path, names: list[str]) -> list[str]:
    """The command prefix that runs a program with NAMES on 127.0.0.1 in a
    private copy of /etc/hosts (nothing for no names): the host's file stays as it is."""
    if not names:
        return []
    hosts = root / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + "".join(f"127.0.0.1 {n}\n" for n in names))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "with-hosts"]


@contextmanager
def running_control_plane(root: Path, controller_manager_flags: tuple[str, ...] = (),
                          node_names: tuple[str, ...] = (NODE_NAME,)) -> Iterator[ControlPlane]:
    """A control plane for the length of the block, stopped in reverse order of start."""
    cp = start_control_plane(root, controller_manager_flags, node_names)
    try:
        yield cp
    finally:
        for p in reversed(cp.procs):
            p.stop()
