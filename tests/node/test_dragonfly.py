"""Hostpath pods on two real nodes of the fleet (node-a, node-b), each
node with a dfdaemon of its own at Dragonfly's default socket,
/run/dragonfly/dfdaemon.sock in the node's /run (the host's <state>/run,
tests/node/node.py), as Dragonfly's DaemonSet puts it: the first pod's
downloader has the origin send the model once (through the seed), the
second pod, on the other node, gets it from the swarm, not from the origin
again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dragonfly.swarm import running_swarm, why_not
from tests.helpers import cannot_run
from tests.node.cluster import SERVER, Cluster, on_node, seeded, sha256
from tests.node.node import CACHE_PATH, downloader_log, pod_report, wait_pods_running
from tests.node.test_strategies import model_files

MiB = 1024 * 1024
# A swarm's start and the scheduler's seed refresh (30 s) come on top of the node's.
pytestmark = pytest.mark.timeout(600)


def test_hostpath_through_each_nodes_dfdaemon(fleet: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    reason = why_not()
    if reason:
        cannot_run(reason)
    data = seeded("dragonfly", 24 * MiB)
    path = "/dragonfly/weights.bin"
    fleet.origin.files[path] = data
    nodes = fleet.nodes[:2]
    ns = fleet.namespace("node-dragonfly", {"w": {
        "source": f"{fleet.origin.url}{path}", "sha256": sha256(data), "size": "32Mi", "strategy": "hostpath"}},
        hostPath={"path": CACHE_PATH, "dragonfly": {"enabled": True, "ifUnavailable": "refuse"}})
    with running_swarm(tmp_path_factory.mktemp("dragonfly-node"), 0) as sw:
        for node in nodes:
            sw.add(node.name, where=node.state / "run" / "dragonfly")
        sw.wait_seed_known()
        served = []
        for node in nodes:
            name = f"reader-{node.name}"
            fleet.run_pod(ns, name, on_node(fleet.model_pod("w"), node.name))
            (pod,) = wait_pods_running(fleet.cp, ns, f"app={name}", 1, fleet.fleet)
            assert pod.spec.node_name == node.name
            log = downloader_log(fleet.cp, ns, pod.metadata.name)
            assert "downloading through the node's dfdaemon at /run/model-cache-dragonfly/dfdaemon.sock" in log, log
            report = pod_report(fleet.cp, ns, pod.metadata.name, SERVER)
            assert model_files(report) == {"weights.bin": sha256(data)}
            served.append(fleet.origin.served[path])
        # node-a's daemon had the origin send the model once (through the
        # seed); node-b's got it from the swarm.
        assert served[0] <= 1.1 * len(data), served
        assert served[1] - served[0] <= 0.01 * len(data), served  # the daemon's size probes at most
        assert "from peers" in log and "0% from the origin" in log, log
