"""The Helm chart (charts/model-cache): with default values it renders the
same objects as manifests/ (Helm's bookkeeping labels aside), in
cert-manager mode the same as manifests/cert-manager/, with the toggles the
same as the kustomize components; every rendering is valid strictly; every
value does what values.yaml says. Needs helm (scripts/helm-bin)."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import (
    assert_policies_pass_check,
    CHART,
    REPO,
    HelmError,
    by_key,
    helm_template,
    kustomize,
    need_helm,
    one,
    validate_strictly,
    without_helm_labels,
)

Docs = list[dict[str, Any]]
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))
ALL_TOGGLES = {"monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                              "dashboard": {"enabled": True}},
               "networkPolicy": {"enabled": True}}


def overlay(tmp: Path, resources: list[str], components: list[str]) -> Path:
    """A throwaway kustomization over the repository's manifests."""
    tmp.mkdir(parents=True, exist_ok=True)
    rel = lambda p: os.path.relpath(REPO / p, tmp)  # noqa: E731  (kustomize wants relative paths)
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [rel(r) for r in resources], "components": [rel(c) for c in components]}))
    return tmp


def without_namespace(kust: Docs) -> Docs:
    """manifests/ less its Namespace: Helm needs the release's namespace before
    it installs, so the chart makes one only for another namespace."""
    return [d for d in kust if d["kind"] != "Namespace"]


def assert_same_objects(helm: Docs, kust: Docs) -> None:
    h, k = by_key(helm), by_key(kust)
    assert sorted(h) == sorted(k), f"only in helm: {sorted(set(h) - set(k))}; only in kustomize: {sorted(set(k) - set(h))}"
    for key in k:
        ours = without_helm_labels(h[key])
        if ours != k[key]:
            diff = difflib.unified_diff(yaml.safe_dump(k[key]).splitlines(), yaml.safe_dump(ours).splitlines(),
                                        "kustomize", "helm", lineterm="")
            pytest.fail(f"{key} differs:\n" + "\n".join(diff))


@pytest.fixture(scope="module")
def chart_default() -> Docs:
    return helm_template()


def test_helm_lint() -> None:
    helm = need_helm()
    for args in ([], ["--set", "certificates.mode=cert-manager,warnOnly=true,networkPolicy.enabled=true,"
                              "monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,"
                              "monitoring.dashboard.enabled=true"]):
        proc = subprocess.run([helm, "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 chart(s) failed" in proc.stdout


def test_default_values_render_the_manifests(chart_default: Docs) -> None:
    assert len(chart_default) >= 14
    assert_same_objects(chart_default, without_namespace(kustomize("manifests")))


def test_a_chart_made_namespace_is_the_manifests_and_is_kept(tmp_path: Path) -> None:
    """The old layout (release elsewhere, namespace made by the chart) renders
    all of manifests/, and the Namespace survives uninstall and an upgrade
    that stops making it, unless namespace.keep is off."""
    values = {"namespace": {"name": "model-cache", "create": True}}
    docs = helm_template("--namespace", "default", values=values, tmp=tmp_path)
    assert_same_objects(docs, kustomize("manifests"))
    assert one(docs, "Namespace", "model-cache")["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    docs = helm_template("--namespace", "default", values={**values, "namespace": {**values["namespace"], "keep": False}},
                         tmp=tmp_path)
    assert "annotations" not in one(docs, "Namespace", "model-cache")["metadata"]
    with pytest.raises(HelmError, match="must exist before the install"):
        helm_template(values=values, tmp=tmp_path)  # the release's own namespace


def test_everything_goes_to_the_release_namespace(tmp_path: Path) -> None:
    docs = helm_template("--namespace", "platform", values=ALL_TOGGLES, tmp=tmp_path, tests=True)
    assert {d["metadata"].get("namespace") for d in docs} <= {None, "platform", "default"}
    assert {d["kind"] for d in docs if d["metadata"].get("namespace") == "default"} == {"Role", "RoleBinding"}
    assert not [d for d in docs if d["kind"] == "Namespace"]


def test_cert_manager_mode_renders_the_cert_manager_overlay() -> None:
    assert_same_objects(helm_template("--set", "certificates.mode=cert-manager"),
                        without_namespace(kustomize("manifests/cert-manager")))


def test_toggles_render_the_kustomize_components(tmp_path: Path) -> None:
    helm = helm_template(values=ALL_TOGGLES, tmp=tmp_path)
    kust = kustomize(overlay(tmp_path / "k", ["manifests"],
                             ["manifests/components/monitoring", "manifests/components/network-policy"]))
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy"} <= {d["kind"] for d in kust}
    assert_same_objects(helm, without_namespace(kust))


def test_warn_only_renders_the_warn_only_component(tmp_path: Path) -> None:
    helm = helm_template(values={"warnOnly": True, "certificates": {"mode": "cert-manager"}}, tmp=tmp_path)
    kust = kustomize(overlay(tmp_path / "k", ["manifests/cert-manager"], ["manifests/components/warn-only"]))
    assert_same_objects(helm, without_namespace(kust))


def test_the_labels_helm_adds_are_only_its_bookkeeping(chart_default: Docs) -> None:
    """The agreement above ignores these labels; they must not reach a selector."""
    for doc in chart_default:
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "model-cache"
    dep = one(chart_default, "Deployment", "model-cache")
    assert "app.kubernetes.io/instance" not in dep["spec"]["selector"]["matchLabels"]


VARIANTS = {
    "default": {},
    "cert-manager": {"certificates": {"mode": "cert-manager"}},
    "everything": {**ALL_TOGGLES, "warnOnly": True, "namespace": {"name": "ml-platform", "create": True},
                   "failurePolicy": "Ignore", "namespaceSelector": {"matchLabels": {"model.cache/enabled": "true"}},
                   "policies": {"existingConfigMap": "my-policies"}, "imagePullSecrets": [{"name": "regcred"}],
                   "nodeSelector": {"pool": "system"}, "tolerations": [{"key": "system", "operator": "Exists"}],
                   "networkPolicy": {"enabled": True, "from": [{"ipBlock": {"cidr": "172.16.0.0/28"}}]}},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendering_is_valid_strictly(variant: str, tmp_path: Path) -> None:
    validate_strictly(helm_template(values=VARIANTS[variant], tmp=tmp_path), minimum=11)


# --- what each value does ---------------------------------------------------

def container(docs: Docs) -> dict[str, Any]:
    (c,) = one(docs, "Deployment", "model-cache")["spec"]["template"]["spec"]["containers"]
    return c


def env(docs: Docs) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(docs)["env"]}


def test_one_image_for_the_webhook_and_the_downloader(tmp_path: Path) -> None:
    docs = helm_template(values={"image": {"repository": "registry.example.com/ml/model-cache", "tag": "1.2.3"}},
                         tmp=tmp_path)
    assert container(docs)["image"] == "registry.example.com/ml/model-cache:1.2.3"
    assert env(docs)["MODEL_CACHE_DOWNLOADER_IMAGE"] == "registry.example.com/ml/model-cache:1.2.3"

    digest = "sha256:" + "ab" * 32
    docs = helm_template(values={"image": {"digest": digest}, "downloaderImage": "mirror.example.com/mc:9"},
                         tmp=tmp_path)
    assert container(docs)["image"] == f"ghcr.io/model-cache/model-cache@{digest}"
    assert env(docs)["MODEL_CACHE_DOWNLOADER_IMAGE"] == "mirror.example.com/mc:9"


def test_default_tag_is_the_app_version(chart_default: Docs) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == chart["version"] == version
    assert container(chart_default)["image"] == f"ghcr.io/model-cache/model-cache:{version}"


def test_warn_only_and_extra_args_reach_serve(tmp_path: Path) -> None:
    from webhook.cli import build_parser  # late: the lead moves modules around

    args = container(helm_template(values={"warnOnly": True, "extraArgs": ["--workers=3"]}, tmp=tmp_path))["args"]
    assert "--warn-only" in args
    parsed = build_parser().parse_args(args)
    assert parsed.warn_only is True and parsed.workers == 3
    assert "--warn-only" not in container(helm_template())["args"]


def test_namespace_rename_reaches_every_reference(tmp_path: Path) -> None:
    docs = helm_template(values={"namespace": {"name": "ml-platform", "create": True},
                                 "certificates": {"mode": "cert-manager"},
                                 **ALL_TOGGLES}, tmp=tmp_path)
    text = yaml.safe_dump_all(docs)
    # "model-cache" is also the name of most objects: look for it as a namespace only.
    for doc in docs:
        assert doc["metadata"].get("namespace") in (None, "ml-platform"), doc["metadata"]
    assert one(docs, "Namespace", "ml-platform")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        obj = one(docs, kind, "model-cache")
        assert obj["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "ml-platform/model-cache-serving"
        for hook in obj["webhooks"]:
            assert hook["clientConfig"]["service"]["namespace"] == "ml-platform"
            values = [v for e in hook["namespaceSelector"]["matchExpressions"] for v in e["values"]]
            assert "ml-platform" in values and "model-cache" not in values, hook["name"]
    serving = one(docs, "Certificate", "model-cache-serving")
    assert "model-cache.ml-platform.svc" in serving["spec"]["dnsNames"]
    for b in (d for d in docs if d["kind"].endswith("RoleBinding")):
        assert {s["namespace"] for s in b["subjects"]} == {"ml-platform"}
    assert "model-cache.model-cache" not in text


def test_namespace_from_the_release(tmp_path: Path) -> None:
    docs = helm_template("--namespace", "platform", values={"namespace": {"name": "", "create": False}}, tmp=tmp_path)
    assert not [d for d in docs if d["kind"] == "Namespace"]
    assert one(docs, "Deployment", "model-cache")["metadata"]["namespace"] == "platform"


def test_inline_policies_replace_the_examples(tmp_path: Path) -> None:
    team = {"apiVersion": "model.cache/v1alpha1", "kind": "ModelCachePolicy",
            "defaults": {"pvc": {"claimName": "models"}},
            "models": {"tiny": {"source": "https://models.example.com/tiny.bin", "size": "1Mi"}}}
    default_text = "apiVersion: model.cache/v1alpha1\nkind: ModelCachePolicy\ndefaults:\n  strategy: pvc\n"
    docs = helm_template(values={"policies": {"files": {"team-a.yaml": team, "_default.yaml": default_text}}},
                         tmp=tmp_path)
    cm = one(docs, "ConfigMap", "model-cache-policies")
    assert sorted(cm["data"]) == ["_default.yaml", "team-a.yaml"]
    assert cm["data"]["_default.yaml"] == default_text
    assert yaml.safe_load(cm["data"]["team-a.yaml"]) == team
    # What the webhook will mount passes the webhook's own check.
    assert_policies_pass_check(cm, tmp_path)


def test_a_policy_file_name_that_is_no_namespace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HelmError, match="must be <namespace>.yaml"):
        helm_template(values={"policies": {"files": {"Team_A.yaml": "x: 1"}}}, tmp=tmp_path)


def test_existing_policy_configmap(tmp_path: Path) -> None:
    docs = helm_template(values={"policies": {"existingConfigMap": "my-policies"}}, tmp=tmp_path)
    assert not [d for d in docs if d["kind"] == "ConfigMap"]
    volumes = {v["name"]: v for v in one(docs, "Deployment", "model-cache")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == "my-policies"


def test_failure_policy_and_namespace_selector(tmp_path: Path) -> None:
    docs = helm_template(values={"failurePolicy": "Ignore", "namespaceSelector": {
        "matchLabels": {"model.cache/enabled": "true"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]}}, tmp=tmp_path)
    (mut,) = one(docs, "MutatingWebhookConfiguration", "model-cache")["webhooks"]
    pods, policies, workloads = one(docs, "ValidatingWebhookConfiguration", "model-cache")["webhooks"]
    assert mut["failurePolicy"] == pods["failurePolicy"] == "Ignore"
    assert policies["failurePolicy"] == workloads["failurePolicy"] == "Ignore"  # always advisory
    for hook in (mut, pods, workloads):
        sel = hook["namespaceSelector"]
        assert sel["matchLabels"] == {"model.cache/enabled": "true"}
        assert sel["matchExpressions"][0] == {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                              "values": ["kube-system", "model-cache"]}
        assert sel["matchExpressions"][1]["key"] == "tier"
    # The policy webhook watches the webhook's own namespace, whatever the selector.
    assert policies["namespaceSelector"]["matchExpressions"][0]["values"] == ["model-cache"]
    # values.schema.json refuses what the chart cannot render, and misspelt keys.
    with pytest.raises(HelmError, match="failurePolicy': value must be one of 'Fail', 'Ignore'"):
        helm_template(values={"failurePolicy": "fail"}, tmp=tmp_path)
    with pytest.raises(HelmError, match="mode': value must be one of 'self-managed', 'cert-manager'"):
        helm_template(values={"certificates": {"mode": "manual"}}, tmp=tmp_path)
    with pytest.raises(HelmError, match="additional properties 'warnonly' not allowed"):
        helm_template(values={"warnonly": True}, tmp=tmp_path)
    with pytest.raises(HelmError, match="additional properties 'enable' not allowed"):
        helm_template(values={"networkPolicy": {"enable": True}}, tmp=tmp_path)


def test_replicas_and_resources(tmp_path: Path) -> None:
    # Helm merges maps with the defaults: null removes the default CPU limit.
    resources = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": None, "memory": "1Gi"}}
    docs = helm_template(values={"replicas": 3, "resources": resources}, tmp=tmp_path)
    assert one(docs, "Deployment", "model-cache")["spec"]["replicas"] == 3
    assert container(docs)["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def test_network_policy_lets_the_api_server_reach_8443(tmp_path: Path) -> None:
    docs = helm_template(values={"networkPolicy": {"enabled": True}}, tmp=tmp_path)
    netpol = one(docs, "NetworkPolicy", "model-cache")
    pod_labels = one(docs, "Deployment", "model-cache")["spec"]["template"]["metadata"]["labels"]
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = netpol["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
    assert "from" not in rule  # from anywhere: the API server's address is not known in advance
    assert container(docs)["ports"][0]["containerPort"] == 8443

    narrowed = helm_template(values={"networkPolicy": {"enabled": True, "from": [{"ipBlock": {"cidr": "172.16.0.0/28"}}]}},
                             tmp=tmp_path)
    assert one(narrowed, "NetworkPolicy", "model-cache")["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "172.16.0.0/28"}}]
    assert not [d for d in helm_template() if d["kind"] == "NetworkPolicy"]


def test_service_monitor_trusts_the_ca_of_each_certificate_mode(tmp_path: Path) -> None:
    for mode, secret, key in (("self-managed", "model-cache-tls", "ca-bundle.crt"),
                              ("cert-manager", "model-cache-serving", "ca.crt")):
        docs = helm_template(values={**ALL_TOGGLES, "certificates": {"mode": mode},
                                     "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}},
                             tmp=tmp_path)
        sm = one(docs, "ServiceMonitor", "model-cache")
        assert sm["metadata"]["labels"]["release"] == "kps"
        (endpoint,) = sm["spec"]["endpoints"]
        assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": secret, "key": key}
        svc = one(docs, "Service", "model-cache")
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_the_packaged_chart_holds_the_files_and_renders_the_same(tmp_path: Path, chart_default: Docs) -> None:
    """`helm package` (the release workflow) stores files/policies and
    files/monitoring, and the package renders what the directory does."""
    import tarfile

    helm = need_helm()
    proc = subprocess.run([helm, "package", str(CHART), "--destination", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (package,) = tmp_path.glob("model-cache-*.tgz")
    with tarfile.open(package) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for name in ("model-cache/files/policies/_default.yaml", "model-cache/files/monitoring/dashboard.json",
                 "model-cache/files/monitoring/prometheusrule.yaml"):
        assert name in members and members[name].isfile(), name
    packaged = subprocess.run([helm, "template", "model-cache", str(package), "-n", "model-cache", "--skip-tests"],
                              capture_output=True, text=True, timeout=120, check=True).stdout
    assert [d for d in yaml.safe_load_all(packaged) if d] == chart_default


def test_events_can_be_turned_off_with_their_rbac(tmp_path: Path, chart_default: Docs) -> None:
    from webhook.cli import build_parser  # late: the lead moves modules around

    assert build_parser().parse_args(container(chart_default)["args"]).events is True
    assert one(chart_default, "ClusterRole", "model-cache-events")["rules"] == [
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]}]
    docs = helm_template(values={"events": False}, tmp=tmp_path)
    assert build_parser().parse_args(container(docs)["args"]).events is False
    assert not [d for d in docs if d["metadata"]["name"] == "model-cache-events"]


# --- the settings every webhook chart has -----------------------------------

@pytest.mark.parametrize(("replicas", "pdb", "made"), [
    (2, {}, {"minAvailable": 1}),
    (1, {}, None),  # minAvailable 1 of 1 would block every drain
    (3, {"minAvailable": 3}, None),
    (2, {"minAvailable": "50%"}, {"minAvailable": "50%"}),
    (2, {"minAvailable": "100%"}, None),
    (1, {"maxUnavailable": 1}, {"maxUnavailable": 1}),
    (2, {"enabled": False}, None),
])
def test_the_pdb_never_blocks_a_drain(replicas: int, pdb: dict, made: dict | None, tmp_path: Path) -> None:
    docs = helm_template(values={"replicas": replicas, "podDisruptionBudget": pdb}, tmp=tmp_path)
    found = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    if made is None:
        assert not found
    else:
        (doc,) = found
        assert {k: v for k, v in doc["spec"].items() if k != "selector"} == made


def test_pod_settings_reach_the_pod(tmp_path: Path) -> None:
    values = {"podLabels": {"tier": "system"}, "commonLabels": {"team": "ml"}, "podAnnotations": {"x.example.com/y": "z"},
              "podSecurityContext": {"runAsUser": 20002}, "securityContext": {"privileged": False},
              "nodeSelector": {"pool": "system"}, "tolerations": [{"key": "k", "operator": "Exists"}],
              "affinity": {"podAntiAffinity": None, "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                  "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}]}}},
              "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
              "priorityClassName": "my-existing-class", "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://p:3128"}],
              "serviceAccount": {"annotations": {"iam.example.com/role": "r"}}}
    docs = helm_template(values=values, tmp=tmp_path)
    validate_strictly(docs, minimum=11)
    dep = one(docs, "Deployment", "model-cache")
    meta, pod = dep["spec"]["template"]["metadata"], dep["spec"]["template"]["spec"]
    assert meta["labels"]["tier"] == "system" and meta["labels"]["team"] == "ml"
    assert "tier" not in dep["spec"]["selector"]["matchLabels"]
    assert meta["annotations"] == {"x.example.com/y": "z"}
    assert pod["securityContext"]["runAsUser"] == 20002 and pod["securityContext"]["runAsNonRoot"] is True
    assert container(docs)["securityContext"]["privileged"] is False
    # Helm merges maps: the default kubernetes.io/os stays unless set to null.
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "system"}
    assert pod["tolerations"][0]["key"] == "k"
    assert list(pod["affinity"]) == ["nodeAffinity"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "zone"
    assert pod["priorityClassName"] == "my-existing-class"
    assert not [d for d in docs if d["kind"] == "PriorityClass"]
    assert env(docs)["HTTPS_PROXY"] == "http://p:3128"
    assert one(docs, "ServiceAccount", "model-cache")["metadata"]["annotations"] == {"iam.example.com/role": "r"}
    assert all(d["metadata"]["labels"]["team"] == "ml" for d in docs)


def test_webhook_timeout_and_object_selector(tmp_path: Path) -> None:
    sel = {"matchLabels": {"model.cache/enabled": "true"}}
    docs = helm_template(values={"timeoutSeconds": 15, "objectSelector": sel}, tmp=tmp_path)
    (mut,) = one(docs, "MutatingWebhookConfiguration", "model-cache")["webhooks"]
    pods, policies, workloads = one(docs, "ValidatingWebhookConfiguration", "model-cache")["webhooks"]
    assert {h["timeoutSeconds"] for h in (mut, pods, policies, workloads)} == {15}
    assert mut["objectSelector"] == pods["objectSelector"] == workloads["objectSelector"] == sel
    assert policies["objectSelector"] == {"matchLabels": {"model.cache/policy": "true"}}


def test_fullname_override_renames_every_object_and_reference(tmp_path: Path) -> None:
    docs = helm_template(values={"fullnameOverride": "mc2", "certificates": {"mode": "cert-manager"}, **ALL_TOGGLES},
                         tmp=tmp_path)
    names = {d["metadata"]["name"] for d in docs}
    assert all(n == "mc2" or n.startswith("mc2-") for n in names), names
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        obj = one(docs, kind, "mc2")
        assert obj["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "model-cache/mc2-serving"
        assert {h["clientConfig"]["service"]["name"] for h in obj["webhooks"]} == {"mc2"}
    assert one(docs, "Certificate", "mc2-serving")["spec"]["dnsNames"][2] == "mc2.model-cache.svc"
    for b in (d for d in docs if d["kind"].endswith("RoleBinding")):
        assert {s["name"] for s in b["subjects"]} == {"mc2"} and b["roleRef"]["name"] == b["metadata"]["name"]
    assert one(docs, "ServiceMonitor", "mc2")["spec"]["endpoints"][0]["tlsConfig"]["serverName"] == "mc2"
    from webhook.cli import build_parser  # late: the lead moves modules around

    self_managed = helm_template(values={"fullnameOverride": "mc2"}, tmp=tmp_path)
    (webhook,) = one(self_managed, "Deployment", "mc2")["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(webhook["args"])
    assert (args.tls_secret, args.tls_service) == ("mc2-tls", "mc2")


def test_a_made_priority_class_is_the_named_one(tmp_path: Path) -> None:
    docs = helm_template(values={"priorityClassName": "ml-critical", "priorityClass": {"create": True, "value": 5}},
                         tmp=tmp_path)
    assert one(docs, "PriorityClass", "ml-critical")["value"] == 5
    with pytest.raises(HelmError, match="reserved system- name"):
        helm_template(values={"priorityClass": {"create": True}}, tmp=tmp_path)


@pytest.mark.parametrize(("values", "message"), [
    ({"resources": {"limits": {"memory": "lots"}}}, "memory"),
    ({"resources": {"requests": {"cpu": "1 core"}}}, "cpu"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "tier", "values": ["a"]}]}}, "operator"),
    ({"objectSelector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}, "values"),
    ({"policies": {"files": {"team-a.yaml": {"models": {"m": {"source": "hf://a/b", "size": "sixteen"}}}}}}, "size"),
    ({"podDisruptionBudget": {"maxUnavailable": 0}}, "maxUnavailable"),
    ({"priorityClassName": "Not A Name"}, "priorityClassName"),
    ({"commonLabels": {"app.kubernetes.io/name": "x"}}, "invalid propertyName 'app.kubernetes.io/name'"),
    ({"timeoutSeconds": 31}, "timeoutSeconds"),
    ({"port": 443}, "port"),  # below 1024: the non-root webhook cannot bind it
    ({"dnsPolicy": "ClusterFirstWithHostnet"}, "dnsPolicy"),
    ({"updateStrategy": {"type": "OnDelete"}}, "updateStrategy"),
    ({"readinessProbe": {"httpGet": {"path": "/readyz"}, "periodSecond": 5}}, "periodSecond"),
    ({"serviceAccount": {"create": "yes"}}, "create"),
    ({"certificates": {"issuerRef": {"kind": "ClusterIssuer"}}}, "name"),
    ({"tests": {"affinity": {"nodeAfinity": {}}}}, "nodeAfinity"),
])
def test_the_schema_refuses(values: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=message):
        helm_template(values=values, tmp=tmp_path)


def test_the_schema_takes_every_quantity_form(tmp_path: Path) -> None:
    resources = {"requests": {"cpu": 0.5, "memory": "1.5Gi", "ephemeral-storage": "1e9"}, "limits": {"cpu": 2}}
    docs = helm_template(values={"resources": resources}, tmp=tmp_path)
    assert container(docs)["resources"]["requests"]["memory"] == "1.5Gi"


def test_helm_test_asks_for_a_model_of_the_test_namespace(tmp_path: Path) -> None:
    def test_pod(values: dict) -> dict[str, Any]:
        docs = helm_template(values=values, tmp=tmp_path, tests=True)
        pod = one(docs, "Pod", "model-cache-test")
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        assert one(docs, "Role", "model-cache-test")["metadata"]["namespace"] == env["TEST_NAMESPACE"]
        return env

    assert test_pod({})["TEST_MODEL"] == "qwen2-0.5b"  # the first model of the example _default.yaml
    team = {"models": {"zeta": {"source": "hf://a/z", "size": "1Gi"}, "alpha": {"source": "hf://a/a", "size": "1Gi"}}}
    files = {"policies": {"files": {"team-a.yaml": team, "_default.yaml": "models:\n  beta: {source: hf://a/b, size: 1Gi}\n"}}}
    assert test_pod({**files, "tests": {"namespace": "team-a"}})["TEST_MODEL"] == "alpha"
    assert test_pod({**files, "tests": {"namespace": "team-b"}})["TEST_MODEL"] == "beta"
    assert test_pod({"tests": {"model": "mine"}, "policies": {"existingConfigMap": "x"}})["TEST_MODEL"] == "mine"
    assert test_pod({"policies": {"existingConfigMap": "x"}})["TEST_MODEL"] == ""
    # The README's quick start replaces the examples with one team's file and
    # sets no tests.*: the test pod goes to that team's namespace (issue 29).
    llm = (REPO / "policies" / "llm.yaml").read_text()
    only_llm = test_pod({"policies": {"files": {"llm.yaml": llm}}})
    assert (only_llm["TEST_NAMESPACE"], only_llm["TEST_MODEL"]) == ("llm", "llama-3-8b")
    assert test_pod({**files})["TEST_NAMESPACE"] == "default"  # _default.yaml has models
    no_default = {"policies": {"files": {"zz.yaml": team, "aa.yaml": "defaults: {}\n"}}}
    assert (test_pod(no_default)["TEST_NAMESPACE"], test_pod(no_default)["TEST_MODEL"]) == ("zz", "alpha")


def test_helm_test_pod_takes_affinity(tmp_path: Path) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}
    docs = helm_template(values={"tests": {"affinity": affinity}}, tmp=tmp_path, tests=True)
    pod = one(docs, "Pod", "model-cache-test")["spec"]
    assert pod["affinity"] == affinity and pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "affinity" not in one(helm_template(tests=True), "Pod", "model-cache-test")["spec"]


def test_port_host_network_and_dns_policy(tmp_path: Path) -> None:
    """For control planes that cannot reach pod IPs: the node's network, its DNS
    policy to match, and a port of the platform's choosing everywhere it is named."""
    values = {"hostNetwork": True, "port": 9443, "networkPolicy": {"enabled": True}}
    docs = helm_template(values=values, tmp=tmp_path)
    validate_strictly(docs, minimum=11)
    pod = one(docs, "Deployment", "model-cache")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "--port=9443" in container(docs)["args"]
    assert container(docs)["ports"] == [{"name": "https", "containerPort": 9443, "protocol": "TCP"}]
    assert one(docs, "Service", "model-cache")["spec"]["ports"][0]["targetPort"] == "https"
    assert one(docs, "NetworkPolicy", "model-cache")["spec"]["ingress"][0]["ports"][0]["port"] == 9443
    own = helm_template(values={"hostNetwork": True, "dnsPolicy": "Default"}, tmp=tmp_path)
    assert one(own, "Deployment", "model-cache")["spec"]["template"]["spec"]["dnsPolicy"] == "Default"
    default = one(helm_template(), "Deployment", "model-cache")["spec"]["template"]["spec"]
    assert "hostNetwork" not in default and "dnsPolicy" not in default


def test_probes_and_update_strategy(tmp_path: Path) -> None:
    values = {"readinessProbe": {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
                                 "periodSeconds": 2, "timeoutSeconds": 3},
              "livenessProbe": {"tcpSocket": {"port": "https"}, "periodSeconds": 20},
              "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}
    docs = helm_template(values=values, tmp=tmp_path)
    validate_strictly(docs, minimum=11)
    webhook = container(docs)
    # Helm merges maps: the defaults' failureThreshold stays.
    assert webhook["readinessProbe"]["periodSeconds"] == 2 and webhook["readinessProbe"]["failureThreshold"] == 2
    assert webhook["livenessProbe"]["tcpSocket"] == {"port": "https"} and webhook["livenessProbe"]["periodSeconds"] == 20
    assert one(docs, "Deployment", "model-cache")["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0,
                                                                                           "maxUnavailable": 1}
    recreate = helm_template(values={"updateStrategy": {"type": "Recreate", "rollingUpdate": None}}, tmp=tmp_path)
    assert one(recreate, "Deployment", "model-cache")["spec"]["strategy"] == {"type": "Recreate"}


def test_service_account_create_name_automount(tmp_path: Path) -> None:
    docs = helm_template(values={"serviceAccount": {"name": "platform-webhooks", "automount": False}}, tmp=tmp_path)
    validate_strictly(docs, minimum=11)
    account = one(docs, "ServiceAccount", "platform-webhooks")
    assert account["automountServiceAccountToken"] is False
    pod = one(docs, "Deployment", "model-cache")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-webhooks" and pod["automountServiceAccountToken"] is False
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings and all(b["subjects"] == [{"kind": "ServiceAccount", "name": "platform-webhooks",
                                               "namespace": "model-cache"}] for b in bindings)
    existing = helm_template(values={"serviceAccount": {"create": False, "name": "made-elsewhere"}}, tmp=tmp_path)
    assert not [d for d in existing if d["kind"] == "ServiceAccount"]
    assert one(existing, "Deployment", "model-cache")["spec"]["template"]["spec"]["serviceAccountName"] == \
        "made-elsewhere"


def test_cert_manager_with_the_platforms_issuer(tmp_path: Path) -> None:
    values = {"certificates": {"mode": "cert-manager", "issuerRef": {"name": "platform-ca", "kind": "ClusterIssuer"}}}
    docs = helm_template(values=values, tmp=tmp_path)
    assert not [d for d in docs if d["kind"] == "Issuer"] and [d["metadata"]["name"] for d in docs
                                                             if d["kind"] == "Certificate"] == ["model-cache-serving"]
    serving = one(docs, "Certificate", "model-cache-serving")
    assert serving["spec"]["issuerRef"] == {"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    hook = one(docs, "MutatingWebhookConfiguration", "model-cache")
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "model-cache/model-cache-serving"
    own = helm_template(values={"certificates": {"mode": "cert-manager"}}, tmp=tmp_path)
    assert one(own, "Certificate", "model-cache-serving")["spec"]["issuerRef"] == {"name": "model-cache-ca",
                                                                                   "kind": "Issuer"}
    compile((CHART / "files" / "helm-test.py").read_text(), "helm-test.py", "exec")
