"""inject/explain --from-cluster: the policies in force, read from the cluster's
ConfigMap through the real kubernetes client (issue 12)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.fakes import FakeApiServer
from tests.helpers import MODEL_CACHE, POLICIES, REPO

CLUSTER_POLICY = """\
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults:
  pvc: {claimName: cluster-models}
models:
  llama-3-8b:
    source: hf://meta-llama/Llama-3.1-8B-Instruct
    revision: cafe0000
    size: 16Gi
"""


def _run(args: list[str], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODEL_CACHE_KUBECONFIG": str(kubeconfig)}
    return subprocess.run([MODEL_CACHE, *args], capture_output=True, text=True, env=env, timeout=60)


def test_inject_uses_the_clusters_policies_not_the_checkouts(tmp_path: Path) -> None:
    with FakeApiServer(tmp_path / "api") as fake:
        fake.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "model-cache-policies", "labels": {"model.cache/policy": "true"}},
                                "data": {"llm.yaml": CLUSTER_POLICY}}, "model-cache")
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        example = str(REPO / "examples/vllm-deployment.yaml")
        result = _run(["inject", "-f", example, "--from-cluster"], kubeconfig)
        assert result.returncode == 0, result.stderr
        pod = yaml.safe_load(result.stdout)["spec"]["template"]
        assert pod["metadata"]["annotations"]["model.cache/injected"] == "pvc/llama-3-8b/cafe0000"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "cluster-models"
        assert fake.count(r"/api/v1/namespaces/model-cache/configmaps/model-cache-policies", "GET") == 1
        # The checkout's policies say otherwise: proof the cluster's were used.
        local = _run(["inject", "-f", example, "--policies", str(POLICIES)], kubeconfig)
        assert "cluster-models" not in local.stdout

        explained = _run(["explain", "-f", example, "--from-cluster"], kubeconfig)
        assert explained.returncode == 0 and "revision cafe0000" in explained.stdout


def test_a_missing_configmap_is_named_with_the_fix(tmp_path: Path) -> None:
    with FakeApiServer(tmp_path / "api") as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        result = _run(["inject", "-f", str(REPO / "examples/vllm-deployment.yaml"), "--from-cluster",
                       "--policy-configmap", "ops/policies"], kubeconfig)
        assert result.returncode == 3 and "Traceback" not in result.stderr  # runtime: not a finding
        assert result.stderr.startswith("model-cache: reading ConfigMap ops/policies: 404 ")
        assert "(is model-cache installed there? see --policy-configmap)" in result.stderr
