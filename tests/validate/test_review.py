"""webhook.admission.validating.review(): what the server and the admission handlers call, with the real client and the fake API server."""

from __future__ import annotations

import base64
import copy
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.validate import pods
from tests.validate.cluster import POLICY_ML, make_provider
from tests.fakes import FakeApiServer
from tests.helpers import pod_review
from webhook.admission import validating as validation
from webhook.policy import PolicyStore, policy_problems
from webhook.validate.lookups import FactsProvider
from webhook.validate.policy_configmap import MAX_POLICY_PROBLEMS


def review(store: PolicyStore, facts: FactsProvider | None, obj: dict, namespace: str = "ml",
           old: dict | None = None, **kw: Any) -> validation.ValidationOutcome:
    return validation.review(pod_review(obj, namespace, oldObject=old, **kw)["request"], store, facts)


def test_pod_without_the_annotation_passes_untouched(store: PolicyStore, provider: FactsProvider,
                                                     apiserver: FakeApiServer) -> None:
    pod = pods.final_pod()
    del pod["metadata"]["annotations"]["model.cache/name"]
    assert review(store, provider, pod) == validation.ValidationOutcome(True, None, [])
    assert apiserver.requests == []


def test_mirror_pods_and_deletes_pass(store: PolicyStore, provider: FactsProvider) -> None:
    pod = pods.final_pod()
    pod["spec"]["volumes"] = []  # would be denied...
    pod["metadata"]["annotations"]["kubernetes.io/config.mirror"] = "abc"
    assert review(store, provider, pod).allowed  # ...but the kubelet's mirror pods are not ours to judge
    assert review(store, provider, pods.final_pod(), operation="DELETE").allowed


def test_healthy_namespace_gives_no_warning(store: PolicyStore, provider: FactsProvider,
                                            healthy_cluster: FakeApiServer) -> None:
    assert review(store, provider, pods.final_pod()) == validation.ValidationOutcome(True, None, [])
    assert review(store, provider, pods.final_pod("mistral-7b")).warnings == []


def test_every_cluster_warning_on_one_pod(store: PolicyStore, provider: FactsProvider, apiserver: FakeApiServer) -> None:
    apiserver.add_pvc("ml", "llm-models", "18Gi", ("ReadWriteOnce",))
    apiserver.add_secret("ml", "hf-token", {"token": "x"})
    assert review(store, provider, pods.final_pod()).warnings == [
        "PVC llm-models has 18Gi; model llama-3-8b needs 16Gi + 20% headroom = 19.2Gi: grow the PVC",
        "PVC llm-models is ReadWriteOnce: replicas on other nodes cannot mount it; use a ReadWriteMany PVC",
        "Secret hf-token has no key HF_TOKEN: the download of model llama-3-8b cannot start; add it",
    ]


def test_missing_pvc_and_secret(store: PolicyStore, provider: FactsProvider, apiserver: FakeApiServer) -> None:
    warnings = review(store, provider, pods.final_pod()).warnings
    assert [w.split(":")[0] for w in warnings] == ["PVC llm-models not found in namespace ml",
                                                    "Secret hf-token for model llama-3-8b not found in namespace ml"]


def test_a_server_reading_another_key_of_the_secret_gets_no_false_warning(
        store: PolicyStore, provider: FactsProvider, healthy_cluster: FakeApiServer) -> None:
    """Issue 17: the model server reads key `token` of Secret hf-token, the
    downloader reads HF_TOKEN, which is there: nothing keeps the download from starting."""
    pod = pods.final_pod()
    pod["spec"]["containers"][0]["env"].append(
        {"name": "HF_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}})
    assert review(store, provider, pod).warnings == []


def test_hostpath_in_a_baseline_namespace(store: PolicyStore, provider: FactsProvider, apiserver: FakeApiServer) -> None:
    apiserver.add_namespace("ml", {"pod-security.kubernetes.io/enforce": "restricted"})
    warnings = review(store, provider, pods.final_pod("asr-en", "hostpath", node_selector=False)).warnings
    assert [w.split(":")[0] for w in warnings] == [
        "model asr-en uses hostpath but the pod has no nodeSelector or nodeAffinity",
        "namespace ml enforces Pod Security restricted, which forbids hostPath volumes"]


def test_lookups_only_for_what_the_pod_uses(store: PolicyStore, provider: FactsProvider,
                                            healthy_cluster: FakeApiServer) -> None:
    review(store, provider, pods.final_pod("granite-digest", "image"))
    assert healthy_cluster.requests == []
    review(store, provider, pods.final_pod(preload=False))
    assert [r.path for r in healthy_cluster.requests] == ["/api/v1/namespaces/ml/persistentvolumeclaims/llm-models"]
    # No secret in phi-2's policy entry; its memory figures (the downloader's,
    # the raised limit) meet the namespace's bounds: listed once, then cached.
    review(store, provider, pods.final_pod("phi-2", "memory"))
    review(store, provider, pods.final_pod("phi-2", "memory"))
    assert [r.path for r in healthy_cluster.requests][1:] == ["/api/v1/namespaces/ml/limitranges",
                                                               "/api/v1/namespaces/ml/resourcequotas"]


def test_unreachable_api_server_is_one_warning_within_budget(store: PolicyStore, healthy_cluster: FakeApiServer,
                                                             kubeconfig: Path) -> None:
    healthy_cluster.slow("/api/v1/", 5)
    facts = make_provider(kubeconfig, budget=0.3, http_timeout=0.5)
    try:
        started = time.monotonic()
        outcome = review(store, facts, pods.final_pod())
        assert time.monotonic() - started < 2.0  # not the 5 s the API server takes: inside timeoutSeconds
        assert outcome.allowed and outcome.warnings == [
            "could not check PVC llm-models, Secret hf-token, memory limits of namespace ml: API server did not answer "
            "within 0.3s; allowed unchecked"]
    finally:
        facts.close()


def test_forbidden_is_a_warning_not_a_denial(store: PolicyStore, provider: FactsProvider,
                                             healthy_cluster: FakeApiServer) -> None:
    healthy_cluster.forbid("/persistentvolumeclaims/")
    outcome = review(store, provider, pods.final_pod())
    assert outcome.allowed and outcome.warnings == [
        "could not check PVC llm-models: 403 forbidden (RBAC: get persistentvolumeclaims); allowed unchecked"]


def test_without_a_cluster_the_policy_rules_still_run(store: PolicyStore) -> None:
    assert review(store, None, pods.final_pod()).warnings == []
    assert [w[:31] for w in review(store, None, pods.final_pod("granite-tag", "oci")).warnings] == [
        "model granite-tag: image quay.i"]


def test_denial_for_a_removed_volume_asks_nothing(store: PolicyStore, provider: FactsProvider,
                                                  apiserver: FakeApiServer) -> None:
    pod = pods.final_pod()
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "model-cache"]
    outcome = review(store, provider, pod)
    assert not outcome.allowed and outcome.warnings == []
    assert outcome.message and "has no volume model-cache" in outcome.message
    assert apiserver.requests == []


def test_unknown_model(store: PolicyStore) -> None:
    pod = pods.tgi_template("llama-4")
    [warning] = review(store, None, pods.deployment(pod), kind="Deployment", group="apps").warnings
    # The same words /mutate will deny its pods with, said at `kubectl apply` time.
    assert warning.startswith('its pods will be denied by model-cache: model "llama-4" is not in the model-cache '
                              "policy for namespace ml; known models: ")
    assert len(warning) <= 256


def test_deployment_template_warnings(store: PolicyStore, provider: FactsProvider, apiserver: FakeApiServer) -> None:
    apiserver.add_pvc("ml", "llm-models", "10Gi")
    apiserver.add_secret("ml", "hf-token", {"HF_TOKEN": "x"})
    deployment = pods.deployment(pods.tgi_template("llama-3-8b"))
    outcome = review(store, provider, deployment, kind="Deployment", group="apps")
    assert outcome.warnings == [
        "PVC llm-models has 10Gi; model llama-3-8b needs 16Gi + 20% headroom = 19.2Gi: grow the PVC"]
    memory = pods.deployment(pods.tgi_template("phi-2", memory_limit=None))
    rules = [w.split(":")[0] for w in review(store, provider, memory, kind="Deployment", group="apps").warnings]
    assert rules == ["model phi-2 (6Gi) uses strategy memory", "model phi-2 keeps 6Gi in memory but container tgi has no memory limit"]


def test_template_never_denied(store: PolicyStore) -> None:
    template = pods.final_pod()  # a GitOps template already run through `model-cache inject`...
    template["spec"]["volumes"] = []  # ...then broken by hand
    deployment = pods.deployment(template)
    assert review(store, None, deployment, kind="Deployment", group="apps").allowed


def test_template_update_checked_only_when_the_template_changed(store: PolicyStore) -> None:
    old = pods.deployment(pods.tgi_template("phi-2"))
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 10
    assert review(store, None, scaled, kind="Deployment", group="apps", operation="UPDATE", old=old).warnings == []
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert review(store, None, changed, kind="Deployment", group="apps", operation="UPDATE", old=old).warnings


def test_cronjob_template(store: PolicyStore) -> None:
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly-eval", "namespace": "ml"},
               "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": pods.tgi_template("granite-tag")}}}}
    assert review(store, None, cronjob, kind="CronJob", group="batch").warnings[0].startswith("model granite-tag: image")


def test_pod_updates_and_subresources_are_not_checked(store: PolicyStore) -> None:
    assert review(store, None, pods.final_pod("granite-tag", "oci"), operation="UPDATE").warnings == []
    request = pod_review(pods.final_pod("granite-tag", "oci"), subResource="ephemeralcontainers")["request"]
    assert validation.review(request, store, None).warnings == []


def test_not_injected_pod(store: PolicyStore) -> None:
    pod = {"metadata": {"annotations": {"model.cache/name": "granite-digest"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert review(store, None, pod).warnings == [
        "model granite-digest was not injected by the model-cache mutating webhook: nothing is mounted; "
        "check that webhook"]


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_warnings_are_counted_by_rule(store: PolicyStore) -> None:
    from webhook.admission import answer_validation
    from webhook.server import metrics

    before = _sample("model_cache_warnings_total", {"rule": "oci-tag"})
    request = pod_review(pods.final_pod("granite-tag", "oci"), namespace="ml")["request"]
    answer = answer_validation(request, store, None)
    assert answer.rules == ["oci-tag"]
    metrics.record("validate", answer)
    assert _sample("model_cache_warnings_total", {"rule": "oci-tag"}) == before + 1


# --- policy ConfigMaps ------------------------------------------------------------------


def policy_configmap(data: dict[str, str], labelled: bool = True, binary: dict[str, str] | None = None) -> dict:
    cm: dict = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "model-cache-policies", "namespace": "model-cache",
                             "labels": {"model.cache/policy": "true"} if labelled else {}},
                "data": data}
    if binary:
        cm["binaryData"] = binary
    return cm


def test_valid_policy_configmap_passes(store: PolicyStore) -> None:
    outcome = review(store, None, policy_configmap({"ml.yaml": POLICY_ML, "README": "not yaml"}),
                     kind="ConfigMap", namespace="model-cache")
    assert outcome == validation.ValidationOutcome(True, None, [])


def test_bad_policy_is_denied_with_policy_check_messages(store: PolicyStore) -> None:
    bad = POLICY_ML.replace("size: 16Gi", "size: sixteen").replace("strategy: pvc", "strategy: tape")
    outcome = review(store, None, policy_configmap({"ml.yaml": bad, "_default.yaml": "kind: [unclosed"}),
                     kind="ConfigMap", namespace="model-cache", operation="UPDATE")
    assert not outcome.allowed
    assert outcome.message == "\n".join(policy_problems("kind: [unclosed", "_default.yaml") + policy_problems(bad, "ml.yaml"))
    assert 'ml.yaml: models.llama-3-8b.size: "sixteen" is not a Kubernetes quantity' in outcome.message
    assert "_default.yaml: not valid YAML: line 1" in outcome.message


def test_same_messages_as_the_cli(store: PolicyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from webhook.cli import main

    bad = POLICY_ML.replace("source: hf://meta-llama/Llama-3.1-8B-Instruct", "source: ftp://x/y")
    d = tmp_path / "cli"
    d.mkdir()
    (d / "ml.yaml").write_text(bad)
    assert main(["policy", "check", str(d)]) == 1
    cli_lines = [line.replace(str(d) + "/", "") for line in capsys.readouterr().err.splitlines()]
    outcome = review(store, None, policy_configmap({"ml.yaml": bad}), kind="ConfigMap", namespace="model-cache")
    assert outcome.message is not None and outcome.message.splitlines() == cli_lines


def test_bad_namespace_file_name_and_binary_data(store: PolicyStore) -> None:
    outcome = review(store, None, policy_configmap({"Team_A.yaml": POLICY_ML},
                                                   binary={"b.yml": base64.b64encode(b"apiVersion: v0").decode(),
                                                           "c.yaml": "%%%"}),
                     kind="ConfigMap", namespace="model-cache")
    assert not outcome.allowed and outcome.message is not None
    assert "Team_A.yaml: file name must be <namespace>.yaml" in outcome.message
    assert "c.yaml: binaryData is not base64" in outcome.message
    assert "b.yml: apiVersion" in outcome.message


def test_unlabelled_configmaps_are_not_ours(store: PolicyStore) -> None:
    assert review(store, None, policy_configmap({"ml.yaml": "kind: ["}, labelled=False), kind="ConfigMap").allowed


def test_policy_configmap_without_policies_warns(store: PolicyStore) -> None:
    outcome = review(store, None, policy_configmap({"notes.txt": "hi"}), kind="ConfigMap", namespace="model-cache")
    assert outcome.allowed and outcome.warnings == [
        "ConfigMap model-cache-policies is labelled model.cache/policy=true but has no <namespace>.yaml key: it holds no policy"]


def test_long_problem_lists_are_capped(store: PolicyStore) -> None:
    many = {f"ns{i}.yaml": "kind: [" for i in range(30)}
    outcome = review(store, None, policy_configmap(many), kind="ConfigMap", namespace="model-cache")
    assert outcome.message is not None
    lines = outcome.message.splitlines()
    assert len(lines) == MAX_POLICY_PROBLEMS + 1
    assert lines[-1] == "... and 10 more: run model-cache policy check on the files"


def test_a_pod_the_mutating_webhook_missed_is_warned_not_denied(store: PolicyStore) -> None:
    """model.cache/name but no marker: the mutating webhook failed open. The pod is
    allowed, with a warning, and with what the mutation would have met."""
    outcome = review(store, None, pods.tgi_template("llama-3-8b"))
    assert outcome.allowed
    assert [f.rule for f in outcome.findings] == ["not-injected"]
    assert outcome.warnings[0].startswith("model llama-3-8b was not injected by the model-cache mutating webhook")
    assert len(outcome.warnings[0]) <= 120


def test_a_template_whose_strategy_is_not_allowed_warns_at_apply_time(store: PolicyStore) -> None:
    """The mutation's own denial, said when the Deployment is applied (it used to say nothing)."""
    template = pods.tgi_template("llama-3-8b", {"model.cache/strategy": "image"})
    [warning] = review(store, None, pods.deployment(template), kind="Deployment", group="apps").warnings
    assert warning.startswith("its pods will be denied by model-cache: ")
    assert 'strategy "image"' in warning
