"""Three nodes (node-a, node-b, node-c), each with its own disk behind the
policy's hostPath, the node agent on each, and pods that really run: where the
scheduler puts a replica now depends on what each node holds."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import wait_for, write_kubeconfig
from tests.helpers import MODEL_CACHE
from tests.node.cluster import AGENT_NS, SERVER, Cluster, on_node, seeded, sha256
from tests.node.node import CACHE_PATH, downloader_log, pod_report, wait_pods_running
from tests.node.test_strategies import MiB, NOTHING_TO_DOWNLOAD, model_files
from webhook.inventory import INVENTORY_ANNOTATION, label_key, read_holdings
from webhook.vocabulary import PREPARE

# The first test also starts the fleet (three nodes, each importing its own
# images), after waiting for the host's node lock if another run holds it.
pytestmark = pytest.mark.timeout(1800)

AGENT_DEFAULTS = {"hostPath": {"path": CACHE_PATH, "agent": True, "cacheAffinityWeight": 100}}


@pytest.fixture
def agents(fleet: Cluster) -> Cluster:
    """The fleet with an agent on every node (no quota unless a test sets one)."""
    fleet.install_agent()
    return fleet


def hostpath_model(cluster: Cluster, name: str, size: int, **spec: Any) -> tuple[str, bytes, dict[str, Any]]:
    path = f"/fleet/{name}.bin"
    data = seeded(name, size)
    cluster.origin.files[path] = data
    return path, data, {"source": f"{cluster.origin.url}{path}", "sha256": sha256(data),
                        "size": f"{size // MiB + 1}Mi", "strategy": "hostpath", **spec}


def holds(cluster: Cluster, node: str, model: str, revision: str = "main") -> bool:
    return label_key(model, revision) in cluster.node_labels(node)


def test_eviction_takes_the_least_recently_used_and_spares_a_model_in_use(agents: Cluster) -> None:
    """On node-c, under a quota of two models and a bit: m0 (oldest, in use),
    m1 (used, then idle), m2 (newest, idle): a fourth, m3, goes over; m1 goes,
    m0 stays because a pod mounts it, m2 because it was used later. A pod
    that needs m1 again downloads it again."""
    cluster, node = agents, "node-c"
    size = 2 * MiB
    models = {f"m{i}": hostpath_model(cluster, f"evict-m{i}", size) for i in range(4)}
    ns = cluster.namespace("fleet-evict", {name: spec for name, (_, _, spec) in models.items()}, **AGENT_DEFAULTS)
    held_before = sum(h.size for h in read_holdings(cluster.cp.core.read_node(node).metadata.annotations))
    cluster.install_agent(quota=str(held_before + 3 * size + size // 2))
    try:
        for name in ("m0", "m1", "m2"):
            cluster.run_pod(ns, name, on_node(cluster.model_pod(name), node))
            wait_pods_running(cluster.cp, ns, f"app={name}", 1, cluster.fleet)
            if name != "m0":
                cluster.cp.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        wait_for("m0, m1, m2 on node-c's labels", lambda: all(holds(cluster, node, m) for m in ("m0", "m1", "m2")),
                 timeout=60)
        cluster.run_pod(ns, "m3", on_node(cluster.model_pod("m3"), node))
        wait_pods_running(cluster.cp, ns, "app=m3", 1, cluster.fleet)

        wait_for("m1 evicted from node-c", lambda: not holds(cluster, node, "m1"), timeout=60)
        cache = cluster.nodes[2].cache
        assert not (cache / "m1" / "main").exists()
        for kept in ("m0", "m2", "m3"):
            assert (cache / kept / "main" / ".model-cache.json").is_file(), kept
            assert holds(cluster, node, kept), kept
        assert "evicted m1@main" in cluster.agent_log(node)

        path_m1 = models["m1"][0]
        served = cluster.origin.served[path_m1]
        cluster.run_pod(ns, "m1-again", on_node(cluster.model_pod("m1"), node))
        (pod,) = wait_pods_running(cluster.cp, ns, "app=m1-again", 1, cluster.fleet)
        assert cluster.origin.served[path_m1] == served + size, "the evicted model was not fetched again, once"
        assert model_files(pod_report(cluster.cp, ns, pod.metadata.name, SERVER)) == {
            "evict-m1.bin": sha256(models["m1"][1])}
    finally:
        cluster.install_agent()


def test_prewarmed_nodes_get_the_replicas_then_the_cold_one_downloads_once(agents: Cluster) -> None:
    cluster = agents
    for node in ("node-a", "node-b"):
        cluster.label_node(node, {"pool": "warm"})
    path, data, spec = hostpath_model(cluster, "llm", 3 * MiB, prewarm={"nodeSelector": {"pool": "warm"}})
    ns = cluster.namespace("fleet-prewarm", {"llm": spec}, **AGENT_DEFAULTS)

    wait_for("llm prewarmed on node-a and node-b",
             lambda: holds(cluster, "node-a", "llm") and holds(cluster, "node-b", "llm"), timeout=120)
    # Once per warm node, and nothing on the cold one.
    assert cluster.origin.served[path] == 2 * len(data)
    assert not holds(cluster, "node-c", "llm")
    status = json.loads(subprocess.run([MODEL_CACHE, "status", "-o", "json", "--model", "llm"], check=True,
                                       capture_output=True, text=True, timeout=60,
                                       env={**os.environ, "MODEL_CACHE_KUBECONFIG": str(cluster.cp.kubeconfig)}).stdout)
    shown = {n["name"]: n["models"] for n in status["nodes"]}
    for node in ("node-a", "node-b"):
        (m,) = shown[node]
        assert (m["model"], m["revision"], m["size"], m["verified"], m["prewarmed"]) == ("llm", "main", len(data),
                                                                                          True, True)
    assert shown["node-c"] == []

    # One replica per node, as when each needs a node's GPU.
    pod = cluster.model_pod("llm")
    pod["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "llm"}}}]}}
    cluster.deploy(ns, "llm", pod, replicas=2)
    pods = wait_pods_running(cluster.cp, ns, "app=llm", 2, cluster.fleet)
    assert sorted(p.spec.node_name for p in pods) == ["node-a", "node-b"]
    assert cluster.origin.served[path] == 2 * len(data), "a replica on a warm node fetched from the origin"
    for pod in pods:  # noqa: B020 - the template above is not used again
        assert NOTHING_TO_DOWNLOAD in downloader_log(cluster.cp, ns, pod.metadata.name)
        # Under the agent the pod has no root container: no model-cache-prepare, nothing runs as uid 0.
        containers = pod.spec.init_containers + pod.spec.containers
        assert PREPARE not in [c.name for c in containers]
        for c in pod.spec.init_containers:
            assert c.security_context.run_as_non_root and c.security_context.run_as_user != 0, c.name
        # The webhook's preference for the nodes that hold the model, beside the pod's own anti-affinity.
        preferred = pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
        assert (label_key("llm", "main"), "Exists") in [(e.key, e.operator) for t in preferred
                                                        for e in t.preference.match_expressions]
        assert pod.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution

    cluster.apps.patch_namespaced_deployment_scale("llm", ns, {"spec": {"replicas": 3}})
    pods = wait_pods_running(cluster.cp, ns, "app=llm", 3, cluster.fleet)
    third = next(p for p in pods if p.spec.node_name == "node-c")
    assert cluster.origin.served[path] == 3 * len(data), "the cold node did not download exactly once"
    assert NOTHING_TO_DOWNLOAD not in downloader_log(cluster.cp, ns, third.metadata.name)
    assert model_files(pod_report(cluster.cp, ns, third.metadata.name, SERVER)) == {"llm.bin": sha256(data)}
    # The agent prepared node-c's cache for the downloader, no root step in the pod.
    model_dir = cluster.nodes[2].cache / "llm"
    assert (model_dir.stat().st_uid, model_dir.stat().st_gid) == (10001, 10001)
    wait_for("node-c's labels say it holds llm now", lambda: holds(cluster, "node-c", "llm"), timeout=30)


def _container_id(pod: k8s.V1Pod) -> str:
    (status,) = pod.status.container_statuses
    return status.container_id.split("://", 1)[1]


def test_an_agent_killed_mid_prewarm_resumes_without_a_second_download(agents: Cluster) -> None:
    cluster, node = agents, "node-a"
    cluster.label_node(node, {"prewarm-slow": "yes"})
    path, data, spec = hostpath_model(cluster, "slow", 12 * MiB, prewarm={"nodeSelector": {"prewarm-slow": "yes"}})
    # The first GET stalls half-way: the kill lands while bytes are on disk and more are due.
    cluster.origin.stall_at[path] = len(data) // 2
    cluster.origin.release_stall.clear()
    cluster.namespace("fleet-killed", {"slow": spec}, **AGENT_DEFAULTS)
    wait_for("half of the model served to the prewarm", lambda: cluster.origin.served[path] >= len(data) // 2,
             timeout=120)
    before = cluster.wait_agents()[node]
    cluster.nodes[0].ctr("tasks", "kill", "-s", "SIGKILL", _container_id(before))
    cluster.origin.release_stall.set()

    wait_for("node-a holds slow", lambda: holds(cluster, node, "slow"), timeout=180)
    after = cluster.wait_agents()[node]
    assert after.status.container_statuses[0].restart_count >= 1, "the agent was not the process killed"
    model_dir = cluster.nodes[0].cache / "slow"
    assert (model_dir / "main" / "slow.bin").read_bytes() == data
    assert sorted(p.name for p in model_dir.iterdir()) == ["main"], "a partial download or a lock was left behind"
    assert cluster.origin.served[path] < 1.5 * len(data), f"{cluster.origin.served[path] / len(data):.2f}x served"
    (holding,) = [h for h in read_holdings(cluster.cp.core.read_node(node).metadata.annotations) if h.model == "slow"]
    assert holding.verified and holding.prewarmed


def _bound_token(cluster: Cluster, pod: k8s.V1Pod) -> str:
    """A token of the agent's ServiceAccount bound to its pod (as the kubelet gets one)."""
    req = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(
        audiences=[], expiration_seconds=600,
        bound_object_ref=k8s.V1BoundObjectReference(kind="Pod", api_version="v1", name=pod.metadata.name,
                                                    uid=pod.metadata.uid)))
    return cluster.cp.core.create_namespaced_service_account_token("model-cache-agent", AGENT_NS, req).status.token


def test_an_agent_may_change_only_our_keys_on_its_own_node(agents: Cluster, tmp_path: Any) -> None:
    cluster = agents
    pod = cluster.wait_agents()["node-a"]
    config = write_kubeconfig(tmp_path / "agent.kubeconfig", cluster.cp.url, cluster.cp.ca, _bound_token(cluster, pod),
                              "agent")
    core = k8s.CoreV1Api(cluster.cp.api_client(config))
    ours = {"metadata": {"labels": {label_key("probe", "main"): "verified"}}}

    core.patch_node("node-a", ours)
    with pytest.raises(ApiException) as other_node:
        core.patch_node("node-b", ours)
    assert other_node.value.status == 403 and "only the Node its pod runs on" in other_node.value.body
    with pytest.raises(ApiException) as foreign:
        core.patch_node("node-a", {"metadata": {"labels": {"pool": "mine"}}})
    assert foreign.value.status == 403 and "only the labels under cache.model.cache/" in foreign.value.body
    with pytest.raises(ApiException) as taint:
        core.patch_node("node-a", {"spec": {"unschedulable": True}})
    assert taint.value.status == 403
    core.patch_node("node-a", {"metadata": {"annotations": {INVENTORY_ANNOTATION: "[]"}}})
    core.patch_node("node-a", {"metadata": {"labels": {label_key("probe", "main"): None}}})
