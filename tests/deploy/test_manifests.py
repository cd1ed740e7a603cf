"""The cluster install as `kustomize build` renders it: every object valid
against the Kubernetes schemas (strict), and the contract of DESIGN.md and
issue 4 held object by object. The RBAC is checked against the API calls
the certificate manager really makes (recorded by the fake API server)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.render import REPO, SCHEMA_VERSIONS, kinds, kustomize, one, validate_strictly
from webhook.vocabulary import VALIDATED_AT_APPLY

VERSIONS = SCHEMA_VERSIONS
CEL = "has(object.metadata.annotations) && 'model.cache/name' in object.metadata.annotations"


def render(path: str) -> list[dict[str, Any]]:
    return kustomize(path)


def build_parser():  # type: ignore[no-untyped-def]
    # Imported late: the lead moves modules around; `model-cache serve`'s
    # own parser is what the Deployment's args must satisfy.
    from webhook.cli import build_parser as real

    return real()


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render("manifests")


@pytest.fixture(scope="module")
def certmanager() -> list[dict[str, Any]]:
    return render("manifests/cert-manager")


def test_every_policy_file_is_listed_in_the_kustomization() -> None:
    """kustomize reads only the files its kustomization names: a policy file
    left out of policies/Kustomization would be silently missing from the
    cluster. Checked on the file itself, so it fails even without kustomize."""
    kustomization = yaml.safe_load((REPO / "policies" / "Kustomization").read_text())
    (generator,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "model-cache-policies"]
    listed = {f.split("=", 1)[-1] for f in generator["files"]}
    on_disk = {p.name for p in (REPO / "policies").iterdir() if p.suffix in (".yaml", ".yml")}
    assert on_disk, "no policies/*.yaml"
    missing = sorted(on_disk - listed)
    assert not missing, f"add {missing} to configMapGenerator files in policies/Kustomization"
    assert not listed - on_disk, f"policies/Kustomization lists files that do not exist: {sorted(listed - on_disk)}"


@pytest.mark.parametrize("path", ["manifests", "manifests/cert-manager"])
def test_every_object_is_valid_strictly(path: str) -> None:
    validate_strictly(render(path), minimum=11)  # all but the cert-manager objects


def test_strict_validation_does_catch_a_typo() -> None:
    """The check above would pass vacuously if validation ignored unknown fields."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"ports": [{"port": 443, "targetPrt": 8443}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


def test_the_install_has_every_object(default: list[dict[str, Any]]) -> None:
    assert {
        ("Namespace", "model-cache"), ("ServiceAccount", "model-cache"), ("Deployment", "model-cache"),
        ("PodDisruptionBudget", "model-cache"), ("Service", "model-cache"),
        ("ConfigMap", "model-cache-policies"),
        ("MutatingWebhookConfiguration", "model-cache"), ("ValidatingWebhookConfiguration", "model-cache"),
        ("ClusterRole", "model-cache-read"), ("ClusterRole", "model-cache-webhook-configs"),
        ("ClusterRole", "model-cache-events"),
        ("Role", "model-cache-tls"),
    } <= kinds(default)
    for doc in default:
        if doc["kind"] not in ("Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding",
                               "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            assert doc["metadata"].get("namespace") == "model-cache", doc["metadata"]["name"]


def test_deployment(default: list[dict[str, Any]]) -> None:
    dep = one(default, "Deployment", "model-cache")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["serviceAccountName"] == "model-cache"
    # Scheduled ahead of the pods that need it, with a class every cluster has (as Gatekeeper).
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert not [d for d in default if d["kind"] == "PriorityClass"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/model-cache/model-cache:0.1.0"
    # The downloader image of policies that name none is the webhook's own.
    env = {e["name"]: e for e in c["env"]}
    assert env["MODEL_CACHE_DOWNLOADER_IMAGE"]["value"] == c["image"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"https": 8443}
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert set(c["resources"]["limits"]) == {"cpu", "memory"}

    # The args must parse with the real `model-cache serve` parser.
    args = build_parser().parse_args(c["args"])
    assert args.command == "serve" and args.policies == "/etc/model-cache/policies" and args.port == 8443
    assert args.tls_secret == "model-cache-tls" and args.tls_service == "model-cache"
    assert args.events is True  # hence the events RBAC below
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert Path(args.cert).parent.as_posix() in mounts and Path(args.key).parent.as_posix() in mounts
    assert mounts["/etc/model-cache/policies"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/model-cache/policies"]["name"]]["configMap"]["name"] == "model-cache-policies"
    # Writable paths exist although the root filesystem is read-only.
    assert "/tmp" in mounts


def test_pod_meets_the_restricted_pod_security_level(default: list[dict[str, Any]]) -> None:
    """The checks of the `restricted` profile that a pod spec can fail."""
    ns = one(default, "Namespace", "model-cache")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = one(default, "Deployment", "model-cache")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert all("hostPath" not in v for v in pod["volumes"])
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert sc["readOnlyRootFilesystem"] is True
        assert not sc.get("privileged")


def test_service_and_pdb(default: list[dict[str, Any]]) -> None:
    svc = one(default, "Service", "model-cache")
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 443 and port["targetPort"] == "https"  # the container's 8443
    pod_labels = one(default, "Deployment", "model-cache")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    pdb = one(default, "PodDisruptionBudget", "model-cache")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_policy_configmap_holds_every_policy_file(default: list[dict[str, Any]]) -> None:
    cm = one(default, "ConfigMap", "model-cache-policies")
    assert cm["metadata"]["labels"]["model.cache/policy"] == "true"
    files = sorted(p.name for p in (REPO / "policies").glob("*.yaml"))
    assert files, "no policies/*.yaml"
    assert sorted(cm["data"]) == files, "list every policies/*.yaml in policies/Kustomization"
    for name in files:
        assert cm["data"][name] == (REPO / "policies" / name).read_text()


def _check_pod_webhook(hook: dict[str, Any], path: str, side_effects: str = "None") -> None:
    assert hook["clientConfig"]["service"] == {"name": "model-cache", "namespace": "model-cache", "path": path, "port": 443}
    assert "caBundle" not in hook["clientConfig"], "a caBundle in the manifests would reset the live one"
    assert hook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["pods"], "scope": "Namespaced"}]
    assert hook["matchConditions"][0]["expression"] == CEL
    assert hook["namespaceSelector"] == {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "model-cache"]}]}
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == side_effects
    assert hook["timeoutSeconds"] == 5 and hook["admissionReviewVersions"] == ["v1"]


def _owners_in(expression: str) -> set[tuple[str, str]]:
    """The (apiVersion, kind) pairs a matchCondition on ownerReferences names."""
    out = set()
    for match in re.finditer(r"r\.apiVersion == '([^']+)' && r\.kind (?:in \[([^\]]+)\]|== '([^']+)')", expression):
        kinds = match.group(2) or f"'{match.group(3)}'"
        out |= {(match.group(1), k.strip().strip("'")) for k in kinds.split(",")}
    return out


def test_webhook_configurations(default: list[dict[str, Any]]) -> None:
    (mut,) = one(default, "MutatingWebhookConfiguration", "model-cache")["webhooks"]
    # /mutate writes the warnings of a pod that skips /validate as Events, never for a dry run.
    _check_pod_webhook(mut, "/mutate", side_effects="NoneOnDryRun")
    assert mut["reinvocationPolicy"] == "IfNeeded"
    assert [c["name"] for c in mut["matchConditions"]] == ["asks-for-a-model", "not-a-mirror-pod"]

    pods, policies, workloads = one(default, "ValidatingWebhookConfiguration", "model-cache")["webhooks"]
    # /validate writes an Event on a pod's controller, never for a dry run.
    _check_pod_webhook(pods, "/validate", side_effects="NoneOnDryRun")
    # Pods of the controllers whose workloads are checked at apply skip /validate (issue 30):
    # the CEL names exactly the controllers webhook.objects.validated_at_apply knows.
    skip = pods["matchConditions"][2]
    assert skip["name"] == "not-made-by-a-checked-workload"
    assert _owners_in(skip["expression"]) == set(VALIDATED_AT_APPLY)
    assert "r.controller" in skip["expression"]
    assert policies["clientConfig"]["service"]["path"] == "/validate"
    assert policies["rules"][0]["resources"] == ["configmaps"]
    assert policies["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert policies["objectSelector"] == {"matchLabels": {"model.cache/policy": "true"}}
    assert policies["namespaceSelector"]["matchExpressions"][0]["values"] == ["model-cache"]
    assert policies["sideEffects"] == "None" and policies["timeoutSeconds"] == 5

    # Workload templates, for warnings at `kubectl apply`: advisory, never blocking.
    assert workloads["clientConfig"]["service"]["path"] == "/validate"
    assert {r for rule in workloads["rules"] for r in rule["resources"]} == {
        "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"}
    # A ReplicaSet is checked when applied on its own; one a Deployment made, on the Deployment.
    assert workloads["matchConditions"][1]["name"] == "not-made-by-a-deployment"
    assert _owners_in(workloads["matchConditions"][1]["expression"]) == {("apps/v1", "Deployment")}
    # Every owner whose pods skip /validate is a kind this webhook checks (a ReplicaSet's own, or its Deployment's).
    resources = {(rule["apiGroups"][0], r) for rule in workloads["rules"] for r in rule["resources"]}
    assert all((v.split("/")[0] if "/" in v else "", k.lower() + "s") in resources for v, k in VALIDATED_AT_APPLY)
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in workloads["rules"])
    assert workloads["failurePolicy"] == "Ignore"
    assert workloads["namespaceSelector"] == pods["namespaceSelector"]
    assert "model.cache/name" in workloads["matchConditions"][0]["expression"]


# --- RBAC -------------------------------------------------------------------

def _rules_for_sa(docs: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None for cluster-wide, rule) for the model-cache ServiceAccount."""
    out = []
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == "model-cache" and s["namespace"] == "model-cache"
                   for s in b["subjects"]):
            continue
        role = one(docs, b["roleRef"]["kind"], b["roleRef"]["name"])
        scope = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        out += [(scope, r) for r in role["rules"]]
    return out


def allowed(docs: list[dict[str, Any]], verb: str, group: str, resource: str, name: str | None,
            namespace: str | None) -> bool:
    for scope, rule in _rules_for_sa(docs):
        if scope is not None and scope != namespace:
            continue
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            if "resourceNames" not in rule or name in rule["resourceNames"]:
                return True
    return False


def test_rbac_has_no_wildcards_and_limits_writes_by_name(default: list[dict[str, Any]]) -> None:
    for scope, rule in _rules_for_sa(default):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field]
        writes = set(rule["verbs"]) & {"update", "patch", "delete", "deletecollection"}
        if writes:
            assert rule.get("resourceNames"), f"{rule} writes without resourceNames"
        if "create" in rule["verbs"]:
            # create cannot be limited by name: namespaced, except Events,
            # which go to the workloads' namespaces (and nothing else on them).
            if rule["apiGroups"] == ["events.k8s.io"]:
                assert rule["resources"] == ["events"] and rule["verbs"] == ["create"]
            else:
                assert scope == "model-cache" and rule["resources"] == ["secrets"]
    assert not allowed(default, "delete", "", "secrets", "model-cache-tls", "model-cache")
    assert not allowed(default, "update", "", "secrets", "other", "model-cache")
    assert not allowed(default, "create", "", "secrets", None, "default")
    assert not allowed(default, "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "other", None)
    # serve --events (on by default): an Event on a pod's controller, in any namespace.
    assert allowed(default, "create", "events.k8s.io", "events", None, "some-team")
    for verb in ("get", "list", "update", "delete"):
        assert not allowed(default, verb, "events.k8s.io", "events", None, "some-team")
    # The validating lookups: get by name, in any namespace; never list or
    # watch (on Secrets that would stream every value in the cluster).
    for resource in ("persistentvolumeclaims", "secrets", "namespaces"):
        assert allowed(default, "get", "", resource, "x", "some-team")
        for verb in ("list", "watch"):
            assert not allowed(default, verb, "", resource, None, "some-team")


def test_rbac_allows_every_call_the_certificate_manager_makes(default: list[dict[str, Any]], tmp_path: Path) -> None:
    from kubernetes import config

    from tests.fakes import FakeApiServer
    from webhook.certs.api import WebhookConfigRef
    from webhook.certs.manager import Reconciler, Settings

    dep = one(default, "Deployment", "model-cache")
    args = build_parser().parse_args(dep["spec"]["template"]["spec"]["containers"][0]["args"])
    with FakeApiServer() as fake:
        fake.seed_manifests(REPO / "manifests" / "base" / "webhooks.yaml")
        api = config.new_client_from_config(config_file=str(fake.write_kubeconfig(tmp_path / "kc")))
        settings = Settings(secret=args.tls_secret, namespace="model-cache", service=args.tls_service,
                            configs=(WebhookConfigRef("mutating", "model-cache"),
                                     WebhookConfigRef("validating", "model-cache")),
                            cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key",
                            ca_file=tmp_path / "ca.crt", interval=1)
        rec = Reconciler(settings, api)
        rec.run_once()
        # A renewal (PUT) too: make the Secret's certificate name another Service.
        settings.service = "renamed"
        rec.run_once()
        calls = [(r.method, r.path.split("?")[0]) for r in fake.requests]
    verbs = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
    assert {m for m, _ in calls} == set(verbs)
    for method, path in calls:
        parts = path.strip("/").split("/")
        if parts[0] == "api":  # /api/v1/namespaces/NS/secrets[/NAME]
            ns, resource, name, group = parts[3], parts[4], (parts[5] if len(parts) > 5 else None), ""
        else:  # /apis/GROUP/v1/RESOURCE/NAME
            ns, group, resource, name = None, parts[1], parts[3], parts[4]
        assert allowed(default, verbs[method], group, resource, name, ns), f"RBAC forbids {method} {path}"


# --- the cert-manager overlay -----------------------------------------------

def test_cert_manager_overlay(certmanager: list[dict[str, Any]], default: list[dict[str, Any]]) -> None:
    names = kinds(certmanager)
    assert ("Role", "model-cache-tls") not in names
    assert ("ClusterRole", "model-cache-webhook-configs") not in names
    assert ("ClusterRole", "model-cache-read") in names
    assert allowed(certmanager, "create", "events.k8s.io", "events", None, "some-team")
    assert not allowed(certmanager, "create", "", "secrets", None, "model-cache")

    c = one(certmanager, "Deployment", "model-cache")["spec"]["template"]["spec"]
    args = build_parser().parse_args(c["containers"][0]["args"])
    assert args.tls_secret is None
    tls_volume = next(v for v in c["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == "model-cache-serving"
    mount = next(m for m in c["containers"][0]["volumeMounts"] if m["name"] == "tls")
    assert mount["mountPath"] == Path(args.cert).parent.as_posix() and mount["readOnly"] is True

    serving = one(certmanager, "Certificate", "model-cache-serving")
    assert serving["spec"]["secretName"] == "model-cache-serving"
    assert "model-cache.model-cache.svc" in serving["spec"]["dnsNames"]
    issuer = one(certmanager, "Issuer", serving["spec"]["issuerRef"]["name"])
    assert one(certmanager, "Certificate", issuer["spec"]["ca"]["secretName"])["spec"]["isCA"] is True
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        obj = one(certmanager, kind, "model-cache")
        assert obj["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "model-cache/model-cache-serving"
        assert obj["webhooks"] == one(default, kind, "model-cache")["webhooks"]


# --- the image ----------------------------------------------------------------

def test_dockerfile_matches_the_manifests(default: list[dict[str, Any]]) -> None:
    """The image cannot be built here (no Docker engine); what can be checked
    without one is checked: the tag is the package version, the user is the
    Deployment's non-root uid, the entrypoint is the CLI, and the build
    context keeps what `pip install .` needs."""
    import re
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    dockerfile = (REPO / "Dockerfile").read_text()
    pod = one(default, "Deployment", "model-cache")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"ghcr.io/model-cache/model-cache:{version}"
    user = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile, re.M)
    assert user and int(user[-1][0]) == pod["securityContext"]["runAsUser"]
    assert re.search(r'^ENTRYPOINT \["model-cache"\]$', dockerfile, re.M)
    assert f"ARG VERSION={version}" in dockerfile
    keep = {line[1:].strip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "webhook", "policies"} <= keep
    for policy in (REPO / "policies").glob("*.yaml"):
        image = yaml.safe_load(policy.read_text()).get("defaults", {}).get("downloader", {}).get("image")
        assert image in (None, f"ghcr.io/model-cache/model-cache:{version}"), policy.name
