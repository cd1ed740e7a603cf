"""What happens around the download on a real node: a native sidecar that
must be up first, a downloader killed half-way, a namespace under the
restricted Pod Security level."""

from __future__ import annotations

import json
from typing import Any

from tests.node.cluster import SERVER, Cluster, downloader_killed_half_way, seeded, sha256
from tests.node.node import downloader_log, pod_report, wait_pods_running
from tests.node.test_strategies import MiB, model_files

ORIGIN_PORT = 8000
SHARD = "model-00001-of-00002.safetensors"
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
              "seccompProfile": {"type": "RuntimeDefault"}}


def origin_sidecar(cluster: Cluster) -> dict[str, Any]:
    """A native sidecar (restartPolicy Always) serving the model image's
    /models over HTTP on the pod's own loopback, as a mesh proxy would stand
    between the downloader and the world: the download works only once it is up."""
    return {
        "name": "origin", "image": cluster.images["model"].reference, "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "command": ["httpd", "-f", "-vv", "-p", f"127.0.0.1:{ORIGIN_PORT}", "-h", "/models"],
        "startupProbe": {"exec": {"command": ["wget", "-q", "-O", "/dev/null",
                                             f"http://127.0.0.1:{ORIGIN_PORT}/config.json"]},
                         "periodSeconds": 1, "failureThreshold": 60},
        "securityContext": dict(RESTRICTED, runAsUser=65532),
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
    }


def shard_model(cluster: Cluster, **extra: Any) -> dict[str, Any]:
    manifest = json.loads(cluster.images["model"].manifest.read_text())
    return {"source": f"http://127.0.0.1:{ORIGIN_PORT}/{SHARD}", "sha256": manifest[SHARD], "size": "8Mi", **extra}


def test_the_downloader_runs_after_a_native_sidecar_has_started(cluster: Cluster) -> None:
    ns = cluster.namespace("node-sidecar", {"shard": shard_model(cluster, strategy="memory")})
    pod = cluster.model_pod("shard", host_network=False)
    pod["spec"]["initContainers"] = [origin_sidecar(cluster)]
    cluster.run_pod(ns, "mesh", pod)
    (running,) = wait_pods_running(cluster.cp, ns, "app=mesh", 1, cluster.node)

    names = [c.name for c in running.spec.init_containers]
    assert names == ["origin", "model-cache-download"], names
    statuses = {s.name: s for s in running.status.init_container_statuses}
    origin_started = statuses["origin"].state.running.started_at
    download = statuses["model-cache-download"].state.terminated
    assert download.exit_code == 0 and download.started_at >= origin_started
    assert statuses["model-cache-download"].restart_count == 0, "the downloader ran before its origin was up"
    # The model came through the sidecar, on the pod's own loopback.
    assert f"url:/{SHARD}" in cluster.cp.core.read_namespaced_pod_log(running.metadata.name, ns, container="origin")
    report = pod_report(cluster.cp, ns, running.metadata.name, SERVER)
    assert model_files(report) == {SHARD: shard_model(cluster)["sha256"]}


def test_restricted_namespace_runs_the_injected_pod_non_root_and_fills_the_cache(cluster: Cluster) -> None:
    ns = cluster.namespace("node-restricted", {"shard": shard_model(cluster)},
                           labels={"pod-security.kubernetes.io/enforce": "restricted"})
    volume = cluster.local_pvc(ns)
    pod = cluster.model_pod("shard", host_network=False)
    del pod["spec"]["automountServiceAccountToken"]  # the serving container gets its token as usual
    pod["spec"]["initContainers"] = [origin_sidecar(cluster)]
    assert "fsGroup" not in pod["spec"]["securityContext"]
    cluster.run_pod(ns, "secure", pod)
    (running,) = wait_pods_running(cluster.cp, ns, "app=secure", 1, cluster.node)

    report = pod_report(cluster.cp, ns, running.metadata.name, SERVER)
    assert model_files(report) == {SHARD: shard_model(cluster)["sha256"]}
    assert report["write"] == "EROFS" and report["uid"] == 1000
    # What made it work under restricted: the fsGroup the webhook gave the pod.
    assert running.spec.security_context.fs_group == 10001
    assert (volume / "shard" / "main" / SHARD).stat().st_uid == 10001
    # The injected init container carries no API token; the server does.
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    mounts = {c.name: {m.mount_path: m.name for m in c.volume_mounts or []}
              for c in running.spec.init_containers + running.spec.containers}
    assert mounts["model-cache-download"][token] == "model-cache-no-token"
    assert mounts[SERVER][token].startswith("kube-api-access-")


def test_a_downloader_killed_half_way_resumes_and_the_model_ends_verified(cluster: Cluster) -> None:
    path, size = "/killed/weights.bin", 24 * MiB
    data = seeded("killed", size)
    cluster.origin.files[path] = data
    ns = cluster.namespace("node-killed", {"llama": {
        "source": f"{cluster.origin.url}{path}", "sha256": sha256(data), "size": "32Mi"}})
    cluster.local_pvc(ns)
    with downloader_killed_half_way(cluster, path, size, "/model-cache/llama/main"):
        cluster.deploy(ns, "llama", cluster.model_pod("llama"), replicas=1)

    (pod,) = wait_pods_running(cluster.cp, ns, "app=llama", 1, cluster.node)
    status = next(s for s in pod.status.init_container_statuses if s.name == "model-cache-download")
    assert status.restart_count >= 1, "the downloader was not the process killed"
    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert model_files(report) == {"weights.bin": sha256(data)}
    served = cluster.origin.served[path]
    # What reached the disk before the kill is not fetched again.
    assert served < 1.5 * size, f"{served / size:.2f}x the model was served"
    assert downloader_log(cluster.cp, ns, pod.metadata.name)
