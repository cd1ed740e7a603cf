"""The node agent in the chart is the agent component of manifests/; its values reach the DaemonSet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.render import HelmError, helm_template, one, validate_strictly
from tests.deploy.test_chart import assert_same_objects, kustomize, overlay

AGENT = {"agent": {"enabled": True}}


def test_the_agent_renders_the_agent_component(tmp_path: Path) -> None:
    helm = helm_template(values=AGENT, tmp=tmp_path)
    kust = kustomize(overlay(tmp_path / "k", ["manifests"], ["manifests/components/agent"]))
    assert {"DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= {d["kind"] for d in kust}
    # Helm makes the agent's namespace (not the release's, which must exist first).
    webhook_ns = [d for d in kust if d["kind"] == "Namespace" and d["metadata"]["name"] == "model-cache"]
    assert_same_objects(helm, [d for d in kust if d not in webhook_ns])
    validate_strictly(helm, minimum=11)


def test_agent_values_reach_the_daemonset(tmp_path: Path) -> None:
    docs = helm_template(values={"agent": {"enabled": True, "nodeSelector": {"pool": "gpu"}, "quota": "500Gi",
                                           "minAge": 60, "cachePath": "/mnt/models", "uid": 2000}}, tmp=tmp_path)
    spec = one(docs, "DaemonSet", "model-cache-agent")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "gpu"}
    (agent,) = spec["containers"]
    assert {"--quota=500Gi", "--min-age=60", "--root=/mnt/models", "--uid=2000"} <= set(agent["args"])
    assert agent["securityContext"]["runAsUser"] == 2000
    assert spec["initContainers"][0]["command"][-1] == "/mnt/models"
    assert spec["volumes"][0]["hostPath"]["path"] == "/mnt/models"


def test_the_agent_runs_in_its_own_privileged_namespace_and_reads_the_webhooks_policies(tmp_path: Path) -> None:
    docs = helm_template("--namespace", "platform", values={"agent": {"enabled": True, "namespace": {"name": "nodes"}}},
                         tmp=tmp_path)
    vap = one(docs, "ValidatingAdmissionPolicy", "model-cache-agent-own-node")
    assert "system:serviceaccount:nodes:model-cache-agent" in vap["spec"]["matchConditions"][0]["expression"]
    assert one(docs, "Namespace", "nodes")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    ds = one(docs, "DaemonSet", "model-cache-agent")
    assert ds["metadata"]["namespace"] == "nodes"
    assert "--policy-configmap=platform/model-cache-policies" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
    role = one(docs, "Role", "model-cache-agent-policies")
    assert role["metadata"]["namespace"] == "platform"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["model-cache-policies"],
                              "verbs": ["get"]}]


@pytest.mark.parametrize("quota", ["lots", "5 GB"])
def test_the_schema_refuses_a_quota_that_is_no_size(quota: str, tmp_path: Path) -> None:
    with pytest.raises(HelmError, match="quota"):
        helm_template(values={"agent": {"enabled": True, "quota": quota}}, tmp=tmp_path)
