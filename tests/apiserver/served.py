"""model-cache installed onto the control plane from manifests/ (through
tests/apiserver/overlay) and `model-cache serve` running beside it, as its
Deployment would run it."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests.apiserver.controlplane import KUBECTL, ControlPlane, Proc, _http_ok, free_port, http_get, spawn, wait_for, write_kubeconfig
from tests.apiserver.pods import simple_pod
from tests.helpers import MODEL_CACHE

HERE = Path(__file__).resolve().parent
WEBHOOK_NS = "model-cache"
# Namespaces the overlay gives a policy (a file per namespace in the ConfigMap),
# with their labels; each test works in its own.
TEST_NAMESPACES: dict[str, dict[str, str]] = {
    "strategies": {}, "plain": {}, "warnings": {}, "denials": {}, "deploy": {}, "failure": {},
    "restricted": {"pod-security.kubernetes.io/enforce": "restricted"},
    "baseline": {"pod-security.kubernetes.io/enforce": "baseline"},
}


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
    # What the Deployment's arguments name; another install beside the
    # session's (tests/apiserver/test_cert_race.py) names its own.
    tls_secret: str = "model-cache-tls"
    tls_namespace: str = WEBHOOK_NS
    # The name of both webhook configurations whose caBundle it keeps.
    config_name: str = "model-cache"

    @property
    def cafile(self) -> Path:
        return self.root / "tls" / "ca.crt"

    @property
    def certfile(self) -> Path:
        return self.root / "tls" / "tls.crt"

    def start(self) -> None:
        self.launch()
        self.wait_ready()
        # The API server's webhook client picks up a changed configuration
        # asynchronously: admission must really go through before tests start.
        wait_for("the API server admitting through the webhook", self._admission_works, procs=(self.proc,), timeout=60)

    def launch(self) -> None:
        """Starts the process and returns at once (replicas started together race)."""
        policies = self.root / "policies"
        cmd = [MODEL_CACHE, "serve", "--policies", str(policies),
               "--cert", str(self.certfile), "--key", str(self.root / "tls" / "tls.key"),
               "--port", str(self.port), "--host", "127.0.0.1", "--workers", "2",
               "--tls-secret", self.tls_secret, "--tls-namespace", self.tls_namespace, "--tls-service", "model-cache",
               "--webhook-configs", f"mutating:{self.config_name},validating:{self.config_name}",
               "--cert-check-interval", "1"]
        self.proc = spawn("model-cache serve", cmd, self.root / f"serve-{int(time.time() * 1000)}.log",
                          env={"MODEL_CACHE_KUBECONFIG": str(self.sa_kubeconfig)})

    def wait_ready(self) -> None:
        """Until it serves /readyz from its Secret's certificate and every caBundle is patched."""
        assert self.proc is not None, "launch() first"
        wait_for("model-cache /readyz", lambda: self.cafile.exists()
                 and _http_ok(f"https://127.0.0.1:{self.port}/readyz", ssl.create_default_context(cafile=str(self.cafile))),
                 procs=(self.proc,), timeout=60)
        wait_for("caBundle patched into every webhook", self.cabundles_patched, procs=(self.proc,), timeout=60)

    def served_certificate(self) -> bytes:
        """The certificate a TLS handshake on its port presents now (PEM), unverified."""
        return ssl.get_server_certificate(("127.0.0.1", self.port), timeout=5).encode()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def cabundles_patched(self) -> bool:
        adm = k8s.AdmissionregistrationV1Api(self.cp.api_client())
        hooks = (adm.read_mutating_webhook_configuration(self.config_name).webhooks
                 + adm.read_validating_webhook_configuration(self.config_name).webhooks)
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


def service_account_token(cp: ControlPlane, namespace: str, name: str, seconds: int = 3600) -> str:
    """A token of the ServiceAccount through the TokenRequest API, as the kubelet gets one for a pod."""
    req = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    return cp.core.create_namespaced_service_account_token(name, namespace, req).status.token


def service_account_kubeconfig(cp: ControlPlane, path: Path, namespace: str, name: str) -> Path:
    """A kubeconfig at PATH with a token of ServiceAccount NAMESPACE/NAME: what its pod would run with."""
    return write_kubeconfig(path, cp.url, cp.ca, service_account_token(cp, namespace, name),
                            f"system:serviceaccount:{namespace}:{name}")


def render_overlay(port: int) -> str:
    out = subprocess.run([KUBECTL or "kubectl", "kustomize", str(HERE / "overlay")], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return out.replace("WEBHOOK_PORT", str(port))


def install(cp: ControlPlane, root: Path) -> Webhook:
    port = free_port()
    # As an operator installs it (kubectl apply), onto the real API server.
    applied = cp.kubectl("apply", "-f", "-", input=render_overlay(port), timeout=120)
    for ns, labels in TEST_NAMESPACES.items():
        cp.namespace(ns, labels)
    sa_kubeconfig = service_account_kubeconfig(cp, root / "sa.kubeconfig", WEBHOOK_NS, "model-cache")
    # What the kubelet would mount from the ConfigMap: its keys as files.
    policies = root / "policies"
    policies.mkdir()
    cm = cp.core.read_namespaced_config_map("model-cache-policies", WEBHOOK_NS)
    for key, value in (cm.data or {}).items():
        (policies / key).write_text(value)
    hook = Webhook(cp, root, port, sa_kubeconfig, applied.stdout + applied.stderr)
    hook.start()
    return hook
