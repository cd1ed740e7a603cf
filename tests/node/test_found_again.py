"""What running injected pods found again (issue 26), on the real node: a
hostpath cache root that a platform team already provisioned, a digest that
never matches, and a volume that ignores fsGroup."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.apiserver.controlplane import wait_for
from tests.node.cluster import SERVER, Cluster, seeded, sha256
from tests.node.node import describe_pods, pod_report, wait_pods_running
from tests.node.test_strategies import MiB, model_files

# The first test of a session also starts the node, and the digest test waits
# out three kubelet back-offs (10 + 20 + 40 s): more than the suite's 300 s.
pytestmark = pytest.mark.timeout(600)

DOWNLOADER = "model-cache-download"
UID = 10001
OTHER = 2000  # a platform team's own account
WRONG = "0" * 64


def _root(cluster: Cluster, name: str, owner: tuple[int, int] | None, mode: int = 0o755) -> tuple[str, Path]:
    """A cache root on the node as an admin left it (None: not there at all);
    its path on the node and on the host."""
    host = cluster.node.host_var_lib / name
    if owner is not None:
        host.mkdir()
        os.chown(host, *owner)
        host.chmod(mode)
    return f"/var/lib/{name}", host


def _terminated(cluster: Cluster, ns: str, pod: str, container: str) -> Any:
    """The last finished run of CONTAINER, once it has one."""
    p = cluster.cp.core.read_namespaced_pod(pod, ns)
    for s in p.status.init_container_statuses or []:
        if s.name == container:
            return s.state.terminated or s.last_state.terminated
    return None


def _failed(cluster: Cluster, ns: str, pod: str, container: str, code: int, timeout: float = 180) -> Any:
    def check() -> Any:
        t = _terminated(cluster, ns, pod, container)
        return t if t is not None and t.exit_code == code else None

    try:
        return wait_for(f"{ns}/{pod} {container} exiting {code}", check, timeout=timeout, every=0.5)
    except RuntimeError as err:
        raise AssertionError(f"{err}\n{describe_pods(cluster.cp, ns)}") from None


# --- item 1: whatever the ownership of an existing hostpath root ------------------------------

ROOTS = {
    "absent": None,                  # the kubelet makes it root:root 0755
    "root-owned": ((0, 0), 0o755),
    "downloaders": ((UID, UID), 0o755),  # as a platform team prepares its nodes
    "group-writable": ((OTHER, UID), 0o2775),  # another owner, write for the downloader's group
}


@pytest.mark.parametrize("case", list(ROOTS))
def test_hostpath_runs_whatever_owns_the_cache_root(cluster: Cluster, case: str) -> None:
    ns = f"node-root-{case}"
    data = seeded(ns, 2 * MiB)
    cluster.origin.files[f"/{ns}/w.bin"] = data
    owner, mode = ROOTS[case] or (None, 0o755)
    path, host = _root(cluster, f"mc-{case}", owner, mode)
    cluster.namespace(ns, {"rand": {"source": f"{cluster.origin.url}/{ns}/w.bin", "sha256": sha256(data),
                                    "size": "8Mi", "strategy": "hostpath"}}, hostPath={"path": path})
    cluster.run_pod(ns, "m", cluster.model_pod("rand"))
    (pod,) = wait_pods_running(cluster.cp, ns, "app=m", 1, cluster.node)

    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert model_files(report) == {"w.bin": sha256(data)} and report["write"] == "EROFS"
    model = (host / "rand").stat()
    assert model.st_uid == UID and stat.S_IMODE(model.st_mode) & 0o755 == 0o755
    root = host.stat()  # the admin's root is left as it was
    assert (root.st_uid, root.st_gid) == (owner or (0, 0))


def test_an_unusable_hostpath_root_fails_with_its_owner_mode_and_fix(cluster: Cluster) -> None:
    ns = "node-root-unusable"
    data = seeded(ns, MiB)
    cluster.origin.files[f"/{ns}/w.bin"] = data
    path, host = _root(cluster, "mc-unusable", (OTHER, OTHER), 0o755)
    cluster.namespace(ns, {"rand": {"source": f"{cluster.origin.url}/{ns}/w.bin", "sha256": sha256(data),
                                    "size": "8Mi", "strategy": "hostpath"}}, hostPath={"path": path})
    cluster.run_pod(ns, "m", cluster.model_pod("rand"))

    done = _failed(cluster, ns, "m", DOWNLOADER, 12)
    message = done.message
    assert f"/model-cache is owned by uid {OTHER} gid {OTHER}, mode 0755" in message, message
    assert f"the downloader runs as uid {UID}, groups {UID}" in message, message
    assert f"on the node, chown {UID}:{UID} " in message and message.rstrip().endswith("supports it"), message
    assert "did not take a pod fsGroup" in message
    assert not (host / "rand").exists()


# --- item 3: a claim that ignores fsGroup ----------------------------------------------------


def _host_path_claim(cluster: Cluster, ns: str, directory: str) -> None:
    """A claim bound to a hostPath PersistentVolume: like a fresh NFS export,
    the kubelet applies no fsGroup to it."""
    pv = f"{ns}-models"
    cluster.cp.core.create_persistent_volume(k8s.V1PersistentVolume(
        metadata=k8s.V1ObjectMeta(name=pv),
        spec=k8s.V1PersistentVolumeSpec(
            capacity={"storage": "1Gi"}, access_modes=["ReadWriteMany"], storage_class_name="",
            persistent_volume_reclaim_policy="Retain", host_path=k8s.V1HostPathVolumeSource(path=directory),
            claim_ref=k8s.V1ObjectReference(namespace=ns, name="models"))))
    cluster.cp.core.create_namespaced_persistent_volume_claim(ns, k8s.V1PersistentVolumeClaim(
        metadata=k8s.V1ObjectMeta(name="models"),
        spec=k8s.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteMany"], storage_class_name="", volume_name=pv,
                                             resources=k8s.V1VolumeResourceRequirements(requests={"storage": "1Gi"}))))
    wait_for(f"claim {ns}/models Bound",
             lambda: cluster.cp.core.read_namespaced_persistent_volume_claim("models", ns).status.phase == "Bound",
             timeout=60)


def test_a_claim_that_ignores_fsgroup_names_the_fix(cluster: Cluster) -> None:
    ns = "node-claim-no-fsgroup"
    data = seeded(ns, MiB)
    cluster.origin.files[f"/{ns}/w.bin"] = data
    path, host = _root(cluster, "export", (0, 0), 0o755)
    cluster.namespace(ns, {"rand": {"source": f"{cluster.origin.url}/{ns}/w.bin", "sha256": sha256(data),
                                    "size": "8Mi"}})
    _host_path_claim(cluster, ns, path)
    cluster.run_pod(ns, "m", cluster.model_pod("rand"))

    done = _failed(cluster, ns, "m", DOWNLOADER, 12)
    message = done.message
    pod = cluster.cp.core.read_namespaced_pod("m", ns)
    assert pod.spec.security_context.fs_group == UID  # given, and ignored by the volume
    assert "cannot write /model-cache/rand: permission denied" in message, message
    assert "/model-cache is owned by uid 0 gid 0, mode 0755" in message, message
    assert f"groups {UID}" in message and "did not take a pod fsGroup" in message, message
    assert f"chown {UID}:{UID} " in message, message
    assert cluster.origin.served[f"/{ns}/w.bin"] == 0


# --- item 2: a digest that never matches -------------------------------------------------------


def test_a_wrong_sha256_costs_at_most_two_fetches_across_restarts(cluster: Cluster) -> None:
    ns = "node-wrong-digest"
    size = 6 * MiB
    data = seeded(ns, size)
    cluster.origin.files[f"/{ns}/w.bin"] = data
    cluster.namespace(ns, {"rand": {"source": f"{cluster.origin.url}/{ns}/w.bin", "sha256": WRONG, "size": "16Mi"}})
    cluster.local_pvc(ns)
    cluster.run_pod(ns, "m", cluster.model_pod("rand"))

    def restarts() -> int:
        p = cluster.cp.core.read_namespaced_pod("m", ns)
        s = next((s for s in p.status.init_container_statuses or [] if s.name == DOWNLOADER), None)
        return s.restart_count if s is not None else 0

    try:
        wait_for("the downloader restarted 3 times", lambda: restarts() >= 3, timeout=240, every=1)
    except RuntimeError as err:
        raise AssertionError(f"{err}\n{describe_pods(cluster.cp, ns)}") from None

    served = cluster.origin.served[f"/{ns}/w.bin"]
    print(f"\norigin bytes for a {size}-byte file with a wrong sha256, after {restarts()} restarts: "
          f"{served} ({served / size:.2f}x)")
    assert served <= 2 * size, f"{served / size:.2f}x the file was fetched"
    done = _failed(cluster, ns, "m", DOWNLOADER, 11, timeout=60)
    message = done.message
    assert f"expected {WRONG} (fetched twice)" in message and f"checksum is {sha256(data)}" in message, message
    assert "from the policy's sha256" in message and "not fetched again" in message, message
