"""The image the Dockerfile builds (scripts/node-images, from a Debian 12 base
with Python 3.11.2) as users get it: its entry points start inside it, as
the user it runs as (issue 20: the installed package was once the empty stub)."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from tests.apiserver.controlplane import wait_for
from tests.node.cluster import Cluster


@pytest.mark.parametrize("name, command, expected", [
    ("version", ["model-cache", "--version"], f"model-cache {version('model-cache')}"),
    ("download-help", ["model-cache", "download", "--help"], "--source"),
    ("user", ["id", "-u"], "10001"),  # the Dockerfile's USER, which runAsNonRoot needs numeric
])
def test_the_images_entry_points_start(cluster: Cluster, name: str, command: list[str], expected: str) -> None:
    ns = "node-image-entrypoints"
    cluster.cp.namespace(ns)
    container = {"name": "model-cache", "image": cluster.images["model-cache"].reference,
                 "imagePullPolicy": "IfNotPresent", "command": command}
    cluster.cp.core.create_namespaced_pod(ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]},
    })
    phase = wait_for(f"pod {name} finished", lambda: cluster.cp.core.read_namespaced_pod(name, ns).status.phase
                     in ("Succeeded", "Failed") and cluster.cp.core.read_namespaced_pod(name, ns).status.phase,
                     timeout=120)
    log = cluster.cp.core.read_namespaced_pod_log(name, ns)
    assert phase == "Succeeded", log
    assert expected in log
    status = cluster.cp.core.read_namespaced_pod(name, ns).status.container_statuses[0]
    assert status.state.terminated.exit_code == 0
