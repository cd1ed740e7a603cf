"""Injected pods of every strategy, really running on the node: the
downloader (from the image the Dockerfile builds) fills the volume, the model
server reads every file read-only, and the numbers the kernel sees are the
ones the webhook wrote."""

from __future__ import annotations

import pytest

from tests.node.cluster import SERVER, Cluster, seeded, sha256
from tests.node.node import pod_report, wait_pods_running

MiB = 1024 * 1024


def test_pvc_http_three_replicas_download_once_and_read_only(cluster: Cluster) -> None:
    data = seeded("pvc-http", 8 * MiB + 123)
    cluster.origin.files["/pvc-http/weights.bin"] = data
    ns = cluster.namespace("node-pvc-http", {"weights": {
        "source": f"{cluster.origin.url}/pvc-http/weights.bin", "sha256": sha256(data), "size": "16Mi"}})
    volume = cluster.local_pvc(ns)
    cluster.deploy(ns, "vllm", cluster.model_pod("weights"), replicas=3)

    pods = wait_pods_running(cluster.cp, ns, "app=vllm", 3, cluster.node)

    for pod in pods:
        report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
        assert report["files"] == {"weights.bin": sha256(data)}, report
        assert report["write"] == "EROFS", report
    assert cluster.origin.served["/pvc-http/weights.bin"] == len(data)
    # The cache directory on the claim's volume: <model>/<revision or main>/
    assert (volume / "weights" / "main" / "weights.bin").read_bytes() == data
