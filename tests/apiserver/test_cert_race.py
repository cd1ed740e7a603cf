"""Self-managed certificates under concurrency, on a real API server (issue 17):
two replicas racing to bootstrap the certificate Secret, and a certificate
rotation while pods are created without pause.

Each test installs model-cache a second time beside the session's, in its own
namespace: its own ServiceAccount (RBAC as shipped, for its own names), its own
Secret and its own webhook configurations (copies of the installed ones, sent
only that namespace's pods), and `model-cache serve` replicas run as the
Deployment runs them. The session's Secret `model-cache-tls` is never touched:
test_self_managed_certs.py counts the writes to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane, free_port, wait_for
from tests.apiserver.loopback import LoopbackWebhook
from tests.apiserver.pods import simple_pod
from tests.apiserver.served import HERE, Webhook, service_account_kubeconfig
from webhook.certs import x509

SA = "model-cache"
# The revision our copy of the policy gives model `tiny`: a pod carrying it
# was injected by these replicas, not by the session's webhook.
REVISION = "cert-race"
RACE = "cert-race"  # the racing replicas' namespace, Secret ({RACE}-tls) and configurations


def injected_here(pod: dict[str, Any]) -> bool:
    return (pod["metadata"].get("annotations") or {}).get("model.cache/injected") == f"pvc/tiny/{REVISION}"


@dataclass
class OwnInstall:
    """model-cache installed a second time: namespace, Secret and both webhook
    configurations named NAME (sorting before the session's `model-cache`, so
    ours inject first and the session's, reinvoked, leaves the pod alone)."""

    cp: ControlPlane
    root: Path
    name: str
    replicas: list[Webhook] = field(default_factory=list)

    @property
    def secret(self) -> str:
        return f"{self.name}-tls"

    @property
    def adm(self) -> k8s.AdmissionregistrationV1Api:
        return k8s.AdmissionregistrationV1Api(self.cp.api_client())

    def setup(self, replicas: int, fail_closed: bool = False) -> None:
        self.cp.namespace(self.name)
        self._service_account()
        self.root.mkdir(parents=True)
        kubeconfig = service_account_kubeconfig(self.cp, self.root / "sa.kubeconfig", self.name, SA)
        for i in range(replicas):
            root = self.root / f"replica-{i}"
            (root / "policies").mkdir(parents=True)
            policy = yaml.safe_load((HERE / "overlay" / "test-policy.yaml").read_text())
            policy["models"]["tiny"]["revision"] = REVISION
            (root / "policies" / f"{self.name}.yaml").write_text(yaml.safe_dump(policy))
            self.replicas.append(Webhook(self.cp, root, free_port(), kubeconfig, "", tls_secret=self.secret,
                                         tls_namespace=self.name, config_name=self.name))
        self._configurations(self.replicas[0].port, fail_closed)

    def _service_account(self) -> None:
        """manifests/base/rbac.yaml for this install's names: get and update
        its Secret, create Secrets in its namespace, get and patch its two
        webhook configurations, and the validating lookups."""
        ns, name = self.name, self.name
        subject = [{"kind": "ServiceAccount", "name": SA, "namespace": ns}]
        config_kinds = ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]
        objects = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": ns}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": ns},
             "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [self.secret],
                        "verbs": ["get", "update"]},
                       {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": name, "namespace": ns}, "subjects": subject,
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
             "rules": [{"apiGroups": ["admissionregistration.k8s.io"], "resources": config_kinds,
                        "resourceNames": [name], "verbs": ["get", "patch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
             "subjects": subject, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": f"{name}-read"}, "subjects": subject,
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "model-cache-read"}},
        ]
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))

    def _configurations(self, port: int, fail_closed: bool) -> None:
        """Copies of the installed configurations, with no caBundle (the
        replicas patch it), sent this namespace's objects only. FAIL_CLOSED
        sets failurePolicy Fail on every webhook, so that no failed call can
        hide behind Ignore."""
        for kind in ("mutating", "validating"):
            read = getattr(self.adm, f"read_{kind}_webhook_configuration")
            installed = json.loads(read("model-cache", _preload_content=False).data)
            hooks = installed["webhooks"]
            for hook in hooks:
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{urlsplit(hook['clientConfig']['url']).path}"}
                hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": self.name}}
                hook.pop("objectSelector", None)
                if fail_closed:
                    hook["failurePolicy"] = "Fail"
            getattr(self.adm, f"create_{kind}_webhook_configuration")(
                {"apiVersion": installed["apiVersion"], "kind": installed["kind"],
                 "metadata": {"name": self.name}, "webhooks": hooks})

    def point(self, kind: str, replica: Webhook) -> None:
        """The API server sends the KIND configuration's calls to REPLICA (as the Service picks a pod)."""
        read = getattr(self.adm, f"read_{kind}_webhook_configuration")
        hooks = json.loads(read(self.name, _preload_content=False).data)["webhooks"]
        ops = [{"op": "replace", "path": f"/webhooks/{i}/clientConfig/url",
                "value": f"https://127.0.0.1:{replica.port}{urlsplit(h['clientConfig']['url']).path}"}
               for i, h in enumerate(hooks)]
        getattr(self.adm, f"patch_{kind}_webhook_configuration")(self.name, ops)

    def read_secret(self) -> dict[str, bytes]:
        raw = json.loads(self.cp.core.read_namespaced_secret(self.secret, self.name, _preload_content=False).data)
        return {k: base64.b64decode(v) for k, v in (raw.get("data") or {}).items()}

    def ca_bundles(self) -> list[bytes]:
        hooks = (json.loads(self.adm.read_mutating_webhook_configuration(self.name, _preload_content=False).data)["webhooks"]
                 + json.loads(self.adm.read_validating_webhook_configuration(self.name, _preload_content=False).data)["webhooks"])
        return [base64.b64decode(h["clientConfig"].get("caBundle", "")) for h in hooks]

    def create_pod(self, name: str) -> dict[str, Any]:
        """An annotated pod through the API server, server-side dry run: as it would be stored."""
        pod = simple_pod(name, annotations={"model.cache/name": "tiny"})
        return json.loads(self.cp.core.create_namespaced_pod(self.name, pod, dry_run="All", _preload_content=False).data)

    def teardown(self) -> None:
        for replica in self.replicas:
            replica.stop()
        for kind in ("mutating", "validating"):
            try:
                getattr(self.adm, f"delete_{kind}_webhook_configuration")(self.name)
            except ApiException as err:
                if err.status != 404:
                    raise


@pytest.fixture()
def own_install(webhook: Webhook, control_plane: ControlPlane,
                tmp_path: Path) -> Iterator[Callable[[str], OwnInstall]]:
    """Needs the session's install: its configurations are the ones copied,
    and its webhook, reinvoked for our namespaces' pods, must answer."""
    made: list[OwnInstall] = []

    def make(name: str) -> OwnInstall:
        made.append(OwnInstall(control_plane, tmp_path / name, name))
        return made[-1]

    try:
        yield make
    finally:
        for install in made:
            install.teardown()


class CreateGate(LoopbackWebhook):
    """A validating webhook on Secrets that holds the CREATE of one Secret
    until a second one arrives (or HOLD seconds pass): both replicas have then
    read "no Secret" and sent their create, so the race on the create really
    happens instead of depending on how fast each process starts."""

    HOLD = 20.0

    def __init__(self, certs: Path, secret: str) -> None:
        self.secret = secret
        self.arrived = 0
        self.most_held = 0  # the most creates of SECRET held at once
        self.other_calls = 0
        self._cond = threading.Condition()
        super().__init__(certs, self._answer)

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        self.hold(request)
        return {}

    def hold(self, request: dict[str, Any]) -> None:
        with self._cond:
            if request.get("name") != self.secret:
                self.other_calls += 1
                return
            self.arrived += 1
            self.most_held = max(self.most_held, self.arrived)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.arrived >= 2, timeout=self.HOLD)

    def configuration(self, name: str, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "gate.cert-race.example.com", "admissionReviewVersions": ["v1"],
                "clientConfig": self.client_config("/gate"),
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["secrets"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 30,
            }],
        }


@pytest.fixture()
def create_gate(control_plane: ControlPlane, tmp_path: Path) -> Iterator[CreateGate]:
    gate = CreateGate(tmp_path / "gate-certs", f"{RACE}-tls")
    control_plane.namespace(RACE)
    adm = k8s.AdmissionregistrationV1Api(control_plane.api_client())
    adm.create_validating_webhook_configuration(gate.configuration(f"{RACE}-gate", RACE))
    try:
        probe = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gate-probe"}}
        wait_for("the gate in force", lambda: control_plane.core.create_namespaced_secret(
            RACE, probe, dry_run="All", _preload_content=False) and gate.other_calls > 0, timeout=30)
        yield gate
    finally:
        adm.delete_validating_webhook_configuration(f"{RACE}-gate")
        gate.close()


def test_two_replicas_racing_to_bootstrap_create_one_secret_and_serve_it(
        control_plane: ControlPlane, own_install: Callable[[str], OwnInstall], create_gate: CreateGate) -> None:
    install = own_install(RACE)
    install.setup(replicas=2)
    first, second = install.replicas
    # As a Deployment's two pods start: at once, against a Secret that does not exist.
    with pytest.raises(ApiException) as missing:
        control_plane.core.read_namespaced_secret(install.secret, install.name)
    assert missing.value.status == 404
    for replica in install.replicas:
        replica.launch()
    for replica in install.replicas:
        replica.wait_ready()
    assert create_gate.most_held == 2, "the two creates did not meet at the gate: no race happened"

    # Exactly one create succeeded; the other was refused as AlreadyExists.
    user = f"system:serviceaccount:{install.name}:{SA}"
    creates = sorted(e["responseStatus"]["code"] for e in control_plane.audit_events()
                     if e["user"]["username"] == user and e["verb"] == "create"
                     and e["objectRef"]["resource"] == "secrets" and e["objectRef"].get("name") == install.secret)
    assert creates == [201, 409]

    # Both serve the Secret's certificate and trust its CA; both configurations publish it.
    secret = install.read_secret()
    assert secret["ca.crt"] in secret["ca-bundle.crt"]
    for replica in install.replicas:
        assert replica.served_certificate().strip() == secret["tls.crt"].strip(), replica.port
        assert replica.cafile.read_bytes() == secret["ca-bundle.crt"], replica.port
    bundles = install.ca_bundles()
    assert len(bundles) == 4
    assert all(b == secret["ca-bundle.crt"] for b in bundles)

    # Admission works through either replica, whichever the Service picks.
    for replica in (first, second):
        install.point("mutating", replica)
        before = replica.reviews("mutate")
        wait_for(f"a pod injected through the replica on port {replica.port}",
                 lambda r=replica, b=before: injected_here(install.create_pod("race")) and r.reviews("mutate") > b,
                 procs=tuple(r.proc for r in install.replicas if r.proc), timeout=30)


def _serving_due_for_renewal(install: OwnInstall) -> bytes | None:
    """The routine rotation: the Secret now holds a serving certificate of the
    same CA that ends in an hour, well inside the 60-day renewal window.
    Returns that certificate: the replicas replace it."""
    secret = install.read_secret()
    names = x509.service_dns_names("model-cache", install.name)
    pair = x509.make_serving(x509.CertPair(secret["ca.crt"], secret["ca.key"]), names,
                             validity=dt.timedelta(hours=1))
    patch = [{"op": "replace", "path": "/data/tls.crt", "value": base64.b64encode(pair.cert_pem).decode()},
             {"op": "replace", "path": "/data/tls.key", "value": base64.b64encode(pair.key_pem).decode()}]
    install.cp.core.patch_namespaced_secret(install.secret, install.name, patch)
    return pair.cert_pem


def _secret_deleted(install: OwnInstall) -> bytes | None:
    """docs/install.md's way to force a new certificate: delete the Secret
    (its other way, deleting the tls.crt key, the API server refuses for a
    kubernetes.io/tls Secret). A replica creates a new one, with a new CA,
    while the replicas still serve certificates of the old one."""
    install.cp.core.delete_namespaced_secret(install.secret, install.name)
    return None


@dataclass
class CreateLoop:
    """Annotated pods created one after another, without pause, until
    stopped, MAX_CREATES or DEADLINE seconds; every answer is kept."""

    install: OwnInstall
    max_creates: int = 2000
    deadline: float = 150.0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        end = time.monotonic() + self.deadline
        while not self.stop.is_set() and self.done < self.max_creates and time.monotonic() < end:
            try:
                pod = self.install.create_pod(f"pod-{self.done}")
                if not injected_here(pod):
                    self.failures.append(f"#{self.done}: not injected: {pod['metadata'].get('annotations')}")
            except ApiException as err:
                self.failures.append(f"#{self.done}: {err.status} {err.body}")
            self.done += 1


@pytest.mark.parametrize("rotate", [_serving_due_for_renewal, _secret_deleted],
                         ids=["serving-renewal", "secret-deleted"])
def test_a_rotation_while_pods_are_created_fails_no_request(
        control_plane: ControlPlane, own_install: Callable[[str], OwnInstall],
        rotate: Callable[[OwnInstall], bytes | None], request: pytest.FixtureRequest) -> None:
    install = own_install(f"cert-rotation-{request.node.callspec.id}")
    # Every webhook fails closed, so a failed call cannot pass unseen.
    install.setup(replicas=2, fail_closed=True)
    first, second = install.replicas
    for replica in install.replicas:
        replica.launch()
        replica.wait_ready()
    # Each pod crosses both replicas: /mutate on the first, /validate on the second.
    install.point("validating", second)
    procs = tuple(r.proc for r in install.replicas if r.proc)
    validated = second.reviews("validate")
    wait_for("admission through both replicas", lambda: injected_here(install.create_pod("probe"))
             and second.reviews("validate") > validated, procs=procs, timeout=30)
    old = install.read_secret()

    loop = CreateLoop(install)
    creator = threading.Thread(target=loop.run, name="create-loop", daemon=True)
    creator.start()
    try:
        wait_for("pods being created", lambda: loop.done >= 10, timeout=30)
        put = rotate(install)
        new = wait_for("the Secret rotated by a replica", lambda: (s := install.read_secret()).get("tls.crt")
                       not in (None, old["tls.crt"], put) and s, procs=procs, timeout=60)
        for replica in install.replicas:
            wait_for(f"the replica on port {replica.port} serving the new certificate",
                     lambda r=replica: r.served_certificate().strip() == new["tls.crt"].strip(), procs=procs, timeout=60)
        # And a while longer, past the informers' and the reload's delays.
        after = loop.done
        wait_for("creates after the rotation", lambda: loop.done >= after + 40, procs=procs, timeout=60)
    finally:
        loop.stop.set()
        creator.join(timeout=30)
    assert loop.failures == []
    assert loop.done >= 50
    assert all(b == new["ca-bundle.crt"] for b in install.ca_bundles())
