"""A hostpath pod on the real node whose downloader goes through a dfdaemon
running on the node (hostPath.dragonfly), and a second pod, through a second
daemon standing in for another node, that gets the model from the first
daemon and the seed, not from the origin again. The daemons' sockets live
under the node's /run (the host's <state>/run, tests/node/node.py), where
the pods' hostPath volumes see them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dragonfly.swarm import running_swarm, why_not
from tests.helpers import cannot_run
from tests.node.cluster import SERVER, Cluster, seeded, sha256
from tests.node.node import downloader_log, pod_report, wait_pods_running
from tests.node.test_strategies import model_files

MiB = 1024 * 1024
# A swarm's start and the scheduler's seed refresh (30 s) come on top of the node's.
pytestmark = pytest.mark.timeout(600)


def test_hostpath_through_the_nodes_dfdaemon(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    reason = why_not()
    if reason:
        cannot_run(reason)
    data = seeded("dragonfly", 24 * MiB)
    path = "/dragonfly/weights.bin"
    cluster.origin.files[path] = data
    run = cluster.node.state / "run"
    with running_swarm(tmp_path_factory.mktemp("dragonfly-node"), 0) as sw:
        for name in ("dfa", "dfb"):
            sw.add(name, where=run / f"dragonfly-{name}")
        sw.wait_seed_known()
        served = []
        for name in ("dfa", "dfb"):
            ns = cluster.namespace(f"node-{name}", {"w": {
                "source": f"{cluster.origin.url}{path}", "sha256": sha256(data), "size": "32Mi",
                "strategy": "hostpath"}},
                hostPath={"path": f"/var/lib/model-cache-{name}",
                          "dragonfly": {"enabled": True, "socketPath": f"/run/dragonfly-{name}/dfdaemon.sock",
                                        "ifUnavailable": "refuse"}})
            cluster.run_pod(ns, "reader", cluster.model_pod("w"))
            (pod,) = wait_pods_running(cluster.cp, ns, "app=reader", 1, cluster.node)
            log = downloader_log(cluster.cp, ns, pod.metadata.name)
            assert "downloading through the node's dfdaemon at /run/model-cache-dragonfly/dfdaemon.sock" in log, log
            report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
            assert model_files(report) == {"weights.bin": sha256(data)}
            served.append(cluster.origin.served[path])
        # The first pod's daemon had the origin send the model once (through the
        # seed); the second got it from the swarm.
        assert served[0] <= 1.1 * len(data), served
        assert served[1] - served[0] <= 0.01 * len(data), served  # the daemon's size probes at most
        assert "from peers" in log and "0% from the origin" in log, log
