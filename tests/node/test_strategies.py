"""Injected pods of every strategy, really running on the node: the
downloader (from the image the Dockerfile builds) fills the volume, the model
server reads every file read-only, and the numbers the kernel sees are the
ones the webhook wrote."""

from __future__ import annotations

import json
import stat

from tests.node.cluster import SERVER, Cluster, seeded, sha256
from tests.node.node import downloader_log, pod_report, wait_pods_running

MiB = 1024 * 1024
MARKER = ".model-cache.json"  # the downloader's completion marker, beside the model's files
NOTHING_TO_DOWNLOAD = "nothing to download"


def model_files(report: dict) -> dict[str, str]:
    return {name: digest for name, digest in report["files"].items() if name != MARKER}


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
        assert model_files(report) == {"weights.bin": sha256(data)}, report
        assert report["write"] == "EROFS", report
        # The claim became writable for the downloader through the fsGroup the webhook gave the pod.
        assert pod.spec.security_context.fs_group == 10001
    # One replica fetched the model, the others waited or found it complete.
    assert cluster.origin.served["/pvc-http/weights.bin"] == len(data)
    fast = [p for p in pods if NOTHING_TO_DOWNLOAD in downloader_log(cluster.cp, ns, p.metadata.name)]
    assert len(fast) >= 1, [downloader_log(cluster.cp, ns, p.metadata.name) for p in pods]
    # The cache directory on the claim's volume: <model>/<revision or main>/
    assert (volume / "weights" / "main" / "weights.bin").read_bytes() == data


def test_pvc_s3_prefix_of_several_files(cluster: Cluster) -> None:
    files = {"config.json": seeded("s3-config", 700), "model.safetensors": seeded("s3-weights", 6 * MiB + 5),
             "tokenizer/vocab.txt": seeded("s3-vocab", 90_000)}
    s3 = cluster.s3()
    s3.create_bucket(Bucket="models")
    for name, data in files.items():
        s3.put_object(Bucket="models", Key=f"phi/{name}", Body=data)
    ns = cluster.namespace("node-pvc-s3", {"phi": {
        "source": "s3://models/phi/", "size": "16Mi", "authSecretName": "s3-creds"}})
    cluster.secret(ns, "s3-creds", {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    cluster.local_pvc(ns)
    cluster.deploy(ns, "tgi", cluster.model_pod("phi"), replicas=2)

    pods = wait_pods_running(cluster.cp, ns, "app=tgi", 2, cluster.node)

    want = {name: sha256(data) for name, data in files.items()}
    for pod in pods:
        report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
        assert model_files(report) == want, report
        assert report["write"] == "EROFS"


def test_hostpath_directory_is_the_downloaders_and_a_second_pod_downloads_nothing(cluster: Cluster) -> None:
    data = seeded("hostpath", 3 * MiB)
    cluster.origin.files["/hostpath/asr.bin"] = data
    ns = cluster.namespace("node-hostpath", {"asr": {
        "source": f"{cluster.origin.url}/hostpath/asr.bin", "sha256": sha256(data), "size": "8Mi",
        "strategy": "hostpath"}})
    cluster.run_pod(ns, "first", cluster.model_pod("asr"))
    wait_pods_running(cluster.cp, ns, "app=first", 1, cluster.node)
    served = cluster.origin.served["/hostpath/asr.bin"]
    assert served == len(data)

    cluster.run_pod(ns, "second", cluster.model_pod("asr"))
    (second,) = wait_pods_running(cluster.cp, ns, "app=second", 1, cluster.node)

    assert cluster.origin.served["/hostpath/asr.bin"] == served, "the second pod fetched the model again"
    assert NOTHING_TO_DOWNLOAD in downloader_log(cluster.cp, ns, second.metadata.name)
    report = pod_report(cluster.cp, ns, second.metadata.name, SERVER)
    assert model_files(report) == {"asr.bin": sha256(data)} and report["write"] == "EROFS"
    # On the node: <root>/<model> belongs to the downloader's user, 0755,
    # and the model's files are readable by any serving user.
    model_dir = cluster.node.host_var_lib / "model-cache-node" / "asr"
    st = model_dir.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (10001, 10001, 0o755)
    weights = (model_dir / "main" / "asr.bin").stat()
    assert weights.st_uid == 10001 and stat.S_IMODE(weights.st_mode) & 0o444 == 0o444


def test_memory_limit_reaches_the_cgroup_and_shm_has_the_policy_size(cluster: Cluster) -> None:
    data = seeded("memory", 2 * MiB)
    cluster.origin.files["/memory/phi.bin"] = data
    ns = cluster.namespace("node-memory", {"phi": {
        "source": f"{cluster.origin.url}/memory/phi.bin", "sha256": sha256(data), "size": "16Mi",
        "strategy": "memory"}}, shmSize="32Mi")
    cluster.run_pod(ns, "phi", cluster.model_pod("phi"))
    (pod,) = wait_pods_running(cluster.cp, ns, "app=phi", 1, cluster.node)

    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert model_files(report) == {"phi.bin": sha256(data)} and report["write"] == "EROFS"
    # The server's own limit (128Mi) grown by the model's size (16Mi), as the kernel enforces it.
    assert int(report["memory_limit"]) == (128 + 16) * MiB
    assert report["shm_bytes"] == 32 * MiB


def test_oci_copies_the_model_out_of_the_model_image(cluster: Cluster) -> None:
    image = cluster.images["model"]
    ns = cluster.namespace("node-oci", {"car": {
        "source": f"oci://{image.reference}", "ociPath": "/models", "size": "16Mi", "strategy": "oci"}})
    cluster.run_pod(ns, "car", cluster.model_pod("car"))
    (pod,) = wait_pods_running(cluster.cp, ns, "app=car", 1, cluster.node)

    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert report["files"] == json.loads(image.manifest.read_text())
    assert report["write"] == "EROFS"


def test_image_volume_mounts_the_model_image_read_only(cluster: Cluster) -> None:
    image = cluster.images["model"]
    ns = cluster.namespace("node-image", {"car": {
        "source": f"oci://{image.reference}", "ociPath": "/models", "size": "16Mi", "strategy": "image"}})
    cluster.run_pod(ns, "car", cluster.model_pod("car"))
    (pod,) = wait_pods_running(cluster.cp, ns, "app=car", 1, cluster.node)

    assert not pod.spec.init_containers, "an image volume needs no init container"
    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert report["files"] == json.loads(image.manifest.read_text())
    assert report["write"] == "EROFS"
