"""The chart's and the recipe overlay's objects, applied to a real
kube-apiserver (built by scripts/k8s-bins, started by tests/apiserver's
running_control_plane): the API server's own validation and admission chain
(CEL matchConditions compiled, Pod Security labels, RBAC escalation checks on
the roles) accept every object. CRD kinds (cert-manager, Prometheus
Operator) are left out: their CRDs are not installed. Skips without the
binaries or kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.deploy.render import CHART, CRD_GROUPS, REPO, helm_template, kustomize, need_helm
from tests.helpers import cannot_run

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from tests.apiserver.controlplane import running_control_plane, why_not
    except ImportError as err:  # the API-server tests moved: say so rather than fail
        pytest.skip(f"tests/apiserver's control plane is not importable: {err}")
    reason = why_not()
    if reason:
        cannot_run(reason)
    with running_control_plane(tmp_path_factory.mktemp("deploy-control-plane")) as cp:
        yield cp


def apply(cluster: Any, docs: Docs) -> list[tuple[str, str, str]]:
    """Server-side apply, as `kubectl apply --server-side` does; returns what was applied."""
    docs = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
    # Namespaces first: the API server refuses objects in a namespace that does not exist yet.
    docs.sort(key=lambda d: d["kind"] != "Namespace")
    out = cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=deploy-test",
                          "-f", "-", input=yaml.safe_dump_all(docs))
    assert out.returncode == 0
    return [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs]


def assert_stored(cluster: Any, applied: list[tuple[str, str, str]]) -> None:
    for kind, ns, name in applied:
        args = ["get", kind.lower(), name, "-o", "name"] + (["-n", ns] if ns else [])
        assert cluster.kubectl(*args).stdout.strip(), f"{kind}/{name} not stored"


def test_the_chart_installs_with_every_toggle(cluster: Any, tmp_path: Path) -> None:
    values = {"namespace": {"name": "chart-ns", "create": True}, "warnOnly": True, "networkPolicy": {"enabled": True},
              "monitoring": {"dashboard": {"enabled": True}},
              "namespaceSelector": {"matchLabels": {"model.cache/enabled": "true"}}}
    applied = apply(cluster, helm_template(values=values, tmp=tmp_path))
    assert len(applied) >= 16
    assert_stored(cluster, applied)
    hooks = yaml.safe_load(cluster.kubectl("get", "mutatingwebhookconfiguration", "model-cache", "-o", "yaml").stdout)
    assert hooks["webhooks"][0]["matchConditions"][0]["name"] == "asks-for-a-model"


NON_DEFAULT = {
    "fullnameOverride": "mc2", "namespace": {"name": "chart-ns2", "create": True},
    "commonLabels": {"team": "platform"}, "podLabels": {"tier": "system"}, "podAnnotations": {"a.example.com/b": "c"},
    "serviceAccount": {"annotations": {"iam.example.com/role": "arn:x"}},
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 20002, "runAsGroup": 20002, "fsGroup": 20002,
                           "seccompProfile": {"type": "RuntimeDefault"}},
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {
        "matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}}]}},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "model-cache"}}}],
    "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "mc2-webhook", "priorityClass": {"create": True, "value": 999},
    "timeoutSeconds": 12, "objectSelector": {"matchExpressions": [{"key": "model.cache/skip", "operator": "DoesNotExist"}]},
    "podDisruptionBudget": {"maxUnavailable": "50%"}, "replicas": 3,
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"}],
    "certificates": {"mode": "cert-manager"},
}


def test_the_chart_installs_with_non_default_values(cluster: Any, tmp_path: Path) -> None:
    """The new settings, as the API server stores them (and a second install
    beside the first, by fullnameOverride)."""
    applied = apply(cluster, helm_template(values=NON_DEFAULT, tmp=tmp_path, tests=True))
    assert ("Pod", "chart-ns2", "mc2-test") in applied and ("PriorityClass", "", "mc2-webhook") in applied
    assert_stored(cluster, applied)
    get = lambda *a: yaml.safe_load(cluster.kubectl("get", *a, "-o", "yaml").stdout)  # noqa: E731
    pod = get("deployment", "mc2", "-n", "chart-ns2")["spec"]["template"]
    assert pod["metadata"]["labels"]["tier"] == "system" and pod["metadata"]["labels"]["team"] == "platform"
    assert pod["spec"]["securityContext"]["runAsUser"] == 20002
    assert pod["spec"]["priorityClassName"] == "mc2-webhook"
    assert pod["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    hook = get("mutatingwebhookconfiguration", "mc2")["webhooks"][0]
    assert hook["timeoutSeconds"] == 12 and hook["clientConfig"]["service"] == {
        "name": "mc2", "namespace": "chart-ns2", "path": "/mutate", "port": 443}
    assert hook["objectSelector"]["matchExpressions"][0]["operator"] == "DoesNotExist"
    assert get("pdb", "mc2", "-n", "chart-ns2")["spec"]["maxUnavailable"] == "50%"
    assert get("serviceaccount", "mc2", "-n", "chart-ns2")["metadata"]["annotations"]["iam.example.com/role"] == "arn:x"


PLATFORM = {
    "fullnameOverride": "mc3", "namespace": {"name": "chart-ns3", "create": True},
    "port": 9443, "hostNetwork": True,
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
    "readinessProbe": {"periodSeconds": 3, "timeoutSeconds": 2},
    "livenessProbe": {"httpGet": None, "tcpSocket": {"port": "https"}},
    "serviceAccount": {"name": "platform-webhooks", "automount": False},
    "networkPolicy": {"enabled": True},
    "tests": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}},
}


def test_the_chart_installs_with_the_platform_settings(cluster: Any, tmp_path: Path) -> None:
    """Issue 29's settings (Kyverno's and cert-manager's charts have them), as
    the API server validates and stores them: port, hostNetwork with its DNS
    policy, probes, update strategy, a named ServiceAccount without an
    automounted token, the default Linux nodeSelector, the test pod's affinity."""
    applied = apply(cluster, helm_template(values=PLATFORM, tmp=tmp_path, tests=True))
    assert ("ServiceAccount", "chart-ns3", "platform-webhooks") in applied
    assert_stored(cluster, applied)
    get = lambda *a: yaml.safe_load(cluster.kubectl("get", *a, "-o", "yaml").stdout)  # noqa: E731
    deployment = get("deployment", "mc3", "-n", "chart-ns3")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["serviceAccountName"] == "platform-webhooks" and pod["automountServiceAccountToken"] is False
    (webhook,) = pod["containers"]
    assert webhook["ports"][0]["containerPort"] == 9443  # the pods get hostPort 9443 from it
    assert "--port=9443" in webhook["args"]
    assert webhook["readinessProbe"]["periodSeconds"] == 3 and webhook["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert webhook["livenessProbe"]["tcpSocket"]["port"] == "https" and "httpGet" not in webhook["livenessProbe"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert get("serviceaccount", "platform-webhooks", "-n", "chart-ns3")["automountServiceAccountToken"] is False
    binding = get("clusterrolebinding", "mc3-read")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "platform-webhooks", "namespace": "chart-ns3"}]
    policy = get("networkpolicy", "mc3", "-n", "chart-ns3")
    assert policy["spec"]["ingress"][0]["ports"][0]["port"] == 9443
    test_pod = get("pod", "mc3-test", "-n", "chart-ns3")["spec"]
    assert test_pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


def test_the_notes_say_how_to_check_the_install(cluster: Any) -> None:
    """NOTES.txt, as `helm install` prints it (Helm asks the API server its
    version for the chart's kubeVersion, hence here)."""
    helm = need_helm()
    # Another name than the installs above, whose objects Helm would refuse to adopt.
    out = subprocess.run([helm, "install", "model-cache", str(CHART), "-n", "model-cache", "--dry-run=client",
                          "--set", "fullnameOverride=notes", "--kubeconfig", str(cluster.kubeconfig)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    for line in ("kubectl -n model-cache rollout status deployment/notes", "helm test model-cache -n model-cache",
                 "asking for model qwen2-0.5b in namespace default", "docs/troubleshooting.md", "EXAMPLE policies",
                 "kubectl label namespace model-cache pod-security.kubernetes.io/enforce=restricted"):
        assert line in notes, line


def test_the_recipe_overlay_installs(cluster: Any) -> None:
    applied = apply(cluster, kustomize(REPO / "docs" / "examples" / "own-policies"))
    assert ("Deployment", "ml-platform", "model-cache") in applied
    assert_stored(cluster, applied)


def test_a_bad_object_is_refused(cluster: Any) -> None:
    """The applies above would prove nothing if the API server took anything."""
    bad = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "bad"}, "webhooks": [{
               "name": "bad.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
               "clientConfig": {"url": "https://127.0.0.1:1/x"},
               "matchConditions": [{"name": "x", "expression": "object.metadata.nosuch("}]}]}
    out = cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0 and "compilation failed" in out.stderr.lower() + out.stdout.lower()
