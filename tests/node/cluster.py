"""What a node test works with: the control plane, the node, the webhook as
tests/apiserver installs it, an HTTP origin and an S3 server on loopback (the
downloader in a hostNetwork pod reaches them there), and builders for the
policies, volumes and workloads the tests create."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator

import boto3
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane, running_control_plane, wait_for
from tests.apiserver.pods import simple_pod
from tests.apiserver.served import Webhook, install
from tests.download.origin import Origin
from tests.helpers import deployment, free_port, pod_template
from tests.node.node import Image, Node, NodeSet, build_images, describe_pods, node_names, start_nodes

SERVER = "server"  # the model-server container of every test workload
AGENT_OVERLAY = Path(__file__).resolve().parent / "agent"
AGENT_SELECTOR = "app.kubernetes.io/component=agent"
AGENT_NS = "model-cache-agent"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def seeded(name: str, size: int) -> bytes:
    """SIZE bytes that differ per NAME and compress poorly (so a throttled
    origin really sends them)."""
    out = bytearray()
    block = hashlib.sha256(name.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += hashlib.sha512(block).digest()
    return bytes(out[:size])


def on_node(pod: dict[str, Any], node: str) -> dict[str, Any]:
    """POD pinned to NODE (by its hostname label), a copy: POD is left as it was."""
    return dict(pod, spec=dict(pod["spec"], nodeSelector={"kubernetes.io/hostname": node}))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Cluster:
    cp: ControlPlane
    fleet: NodeSet
    webhook: Webhook
    root: Path
    origin: Origin = field(init=False)
    s3_url: str = field(init=False)
    _moto: Any = field(init=False, default=None)

    def __enter__(self) -> "Cluster":
        from moto.server import ThreadedMotoServer

        self.origin = Origin().start()
        port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()
        self.s3_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.origin.stop()
        self._moto.stop()

    @property
    def node(self) -> Node:
        """The first node (the only one of a single-node cluster)."""
        return self.fleet.nodes[0]

    @property
    def nodes(self) -> list[Node]:
        return self.fleet.nodes

    @property
    def images(self) -> dict[str, Image]:
        return self.node.images

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.cp.api_client())

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"])

    # --- policies ---------------------------------------------------------------

    def namespace(self, name: str, models: dict[str, dict[str, Any]], labels: dict[str, str] | None = None,
                  **defaults: Any) -> str:
        """Namespace NAME with a policy of MODELS (downloader from the built
        image, small requests for a 2-CPU node), served by the running webhook
        once this returns."""
        self.cp.namespace(name, labels)
        policy = {
            "apiVersion": "model.cache/v1alpha1", "kind": "ModelCachePolicy",
            "defaults": {
                "strategy": "pvc", "allowedStrategies": ["pvc", "hostpath", "memory", "oci", "image"],
                "pvc": {"claimName": "models"}, "hostPath": {"path": "/var/lib/model-cache-node"},
                "shmSize": "64Mi",
                "downloader": {
                    "image": self.images["model-cache"].reference, "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                    "env": {"AWS_ENDPOINT_URL": self.s3_url, "AWS_DEFAULT_REGION": "us-east-1"},
                },
                **defaults,
            },
            "models": models,
        }
        text = yaml.safe_dump(policy, sort_keys=False)
        # As an operator would: the policy ConfigMap, and the file the kubelet
        # would project from it into the webhook's pod.
        self.cp.kubectl("patch", "configmap", "model-cache-policies", "-n", "model-cache", "--type", "merge",
                        "-p", yaml.safe_dump({"data": {f"{name}.yaml": text}}))
        (self.webhook.root / "policies" / f"{name}.yaml").write_text(text)
        model = next(iter(models))
        wait_for(f"the webhook serving the policy of {name}", lambda: self._serves(name, model), timeout=30)
        return name

    def _serves(self, namespace: str, model: str) -> bool:
        pod = simple_pod("probe", annotations={"model.cache/name": model})
        try:
            created = self.cp.core.create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)
        except ApiException:
            return False  # denied while the policy is not loaded yet: unknown model
        annotations = json.loads(created.data)["metadata"].get("annotations") or {}
        return "model.cache/injected" in annotations

    def secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.cp.core.create_namespaced_secret(namespace, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=name), string_data=data))

    # --- volumes ----------------------------------------------------------------

    def local_pvc(self, namespace: str, size: str = "1Gi", name: str = "models") -> Path:
        """A local PersistentVolume on the node (a directory of the node's
        state, as an admin prepares one) bound to claim NAME, ReadWriteMany as
        the pvc strategy wants. Returns the directory on the host."""
        directory = self.node.state / "volumes" / f"{namespace}-{name}"
        directory.mkdir(parents=True)
        pv_name = f"{namespace}-{name}"
        self.cp.core.create_persistent_volume(k8s.V1PersistentVolume(
            metadata=k8s.V1ObjectMeta(name=pv_name),
            spec=k8s.V1PersistentVolumeSpec(
                capacity={"storage": size}, access_modes=["ReadWriteMany"],
                persistent_volume_reclaim_policy="Retain", storage_class_name="",
                local=k8s.V1LocalVolumeSource(path=str(directory)),
                claim_ref=k8s.V1ObjectReference(namespace=namespace, name=name),
                node_affinity=k8s.V1VolumeNodeAffinity(required=k8s.V1NodeSelector(node_selector_terms=[
                    k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
                        key="kubernetes.io/hostname", operator="In", values=[self.node.name])])])),
            )))
        self.cp.core.create_namespaced_persistent_volume_claim(namespace, k8s.V1PersistentVolumeClaim(
            metadata=k8s.V1ObjectMeta(name=name),
            spec=k8s.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteMany"], storage_class_name="",
                                                 volume_name=pv_name,
                                                 resources=k8s.V1VolumeResourceRequirements(requests={"storage": size}))))
        wait_for(f"claim {namespace}/{name} Bound",
                 lambda: self.cp.core.read_namespaced_persistent_volume_claim(name, namespace).status.phase == "Bound",
                 timeout=60)
        return directory

    # --- workloads --------------------------------------------------------------

    def model_pod(self, model: str, *, host_network: bool = True, **annotations: str) -> dict[str, Any]:
        """A restricted-compliant pod whose server container is the model
        server of scripts/node-images, annotated for MODEL."""
        pod = simple_pod("server", annotations={"model.cache/name": model,
                                                **{f"model.cache/{k.replace('_', '-')}": v
                                                   for k, v in annotations.items()}})
        spec = pod["spec"]
        spec["terminationGracePeriodSeconds"] = 1
        spec["automountServiceAccountToken"] = False
        if host_network:
            spec["hostNetwork"] = True
        server = spec["containers"][0]
        server["name"] = SERVER
        server["image"] = self.images["model-server"].reference
        server["imagePullPolicy"] = "IfNotPresent"
        server["resources"] = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
        server["readinessProbe"] = {"exec": {"command": ["python3", "-c", "1"]}, "periodSeconds": 1}
        return pod

    def deploy(self, namespace: str, name: str, pod: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
        body = deployment(pod_template(pod, {"app": name}), name, replicas=replicas)
        return self.apps.create_namespaced_deployment(namespace, body).to_dict()

    def run_pod(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        pod = dict(pod, metadata=dict(pod["metadata"], name=name, labels={"app": name}))
        self.cp.core.create_namespaced_pod(namespace, pod)

    # --- the node agent ---------------------------------------------------------

    def install_agent(self, quota: str = "") -> None:
        """manifests/components/agent through tests/node/agent (the image
        built here, the API server on loopback), applied or re-applied with
        QUOTA; returns when a current agent runs Ready on every node."""
        text = self.cp.kubectl("kustomize", str(AGENT_OVERLAY)).stdout
        port = self.cp.url.rsplit(":", 1)[1]
        text = (text.replace("AGENT_IMAGE", self.images["model-cache"].reference)
                .replace("API_PORT", f'"{port}"').replace("QUOTA_VALUE", f'"{quota}"'))
        self.cp.kubectl("apply", "-f", "-", input=text)
        self.wait_agents()

    def wait_agents(self, timeout: float = 120) -> dict[str, k8s.V1Pod]:
        """Node name -> its agent pod, once the DaemonSet's current pods all run Ready."""
        def ready() -> dict[str, k8s.V1Pod] | None:
            ds = self.apps.read_namespaced_daemon_set("model-cache-agent", AGENT_NS)
            st = ds.status
            if (st.observed_generation or 0) < ds.metadata.generation or st.updated_number_scheduled != len(self.nodes) \
                    or st.number_ready != len(self.nodes) or st.number_available != len(self.nodes):
                return None
            pods = [p for p in self.cp.core.list_namespaced_pod(AGENT_NS, label_selector=AGENT_SELECTOR).items
                    if p.metadata.deletion_timestamp is None and p.status.phase == "Running"]
            by_node = {p.spec.node_name: p for p in pods}
            return by_node if len(by_node) == len(self.nodes) == len(pods) else None

        try:
            return wait_for("an agent Ready on every node", ready, timeout=timeout, every=0.5)
        except RuntimeError as err:
            raise AssertionError(f"{err}\n{describe_pods(self.cp, AGENT_NS, AGENT_SELECTOR)}\n"
                                 f"{self.fleet.logs()}") from None

    def agent_log(self, node: str) -> str:
        pod = self.wait_agents()[node]
        return self.cp.core.read_namespaced_pod_log(pod.metadata.name, AGENT_NS, container="agent")

    def node_labels(self, node: str) -> dict[str, str]:
        return dict(self.cp.core.read_node(node).metadata.labels or {})

    def label_node(self, node: str, labels: dict[str, str | None]) -> None:
        self.cp.core.patch_node(node, {"metadata": {"labels": labels}})


def downloader_pids(dest: str) -> list[int]:
    """The downloader processes writing DEST (the path in the pod), seen from the host."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"download" in argv and dest.encode() in argv and any(a.endswith(b"model-cache") for a in argv):
            pids.append(int(entry.name))
    return pids


def drained(port: int) -> bool:
    """Whether every established TCP connection to or from PORT (hostNetwork
    pods share this network namespace) has nothing queued: what a server
    sent has been read by its client, not parked in socket buffers."""
    open_conns = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
            if state != "01" or port not in (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)):
                continue
            open_conns += 1
            tx, rx = (int(q, 16) for q in queues.split(":"))
            if tx or rx:
                return False
    return open_conns > 0


@contextmanager
def downloader_killed_half_way(cluster: "Cluster", path: str, size: int, dest: str) -> Iterator[None]:
    """Around the making of a pod: the origin's GET that reaches half of the
    SIZE bytes at PATH hangs there; once it does and the downloader has read
    what was sent (a loaded machine leaves megabytes in socket buffers, which
    a kill loses and the origin counts), the downloader writing DEST is
    SIGKILLed (bytes on disk, more due), and the origin answers again."""
    cluster.origin.release_stall.clear()
    cluster.origin.stall_at[path] = size // 2
    yield
    wait_for("half of it served", lambda: cluster.origin.served[path] >= size // 2, timeout=180)
    wait_for("the downloader to read what was served", lambda: drained(cluster.origin.port), timeout=60)
    for pid in wait_for("the downloader's process", lambda: downloader_pids(dest), timeout=30):
        os.kill(pid, signal.SIGKILL)
    cluster.origin.release_stall.set()


@contextmanager
def running_cluster(root: Path, nodes: int = 1) -> Iterator[Cluster]:
    """The whole of it for the length of the block, stopped in reverse order:
    the images built (or reused), the control plane, NODES nodes (one, or a
    fleet of node-a, node-b, ...), the webhook installed as in
    tests/apiserver, the origins."""
    images = build_images()
    names = node_names(nodes)
    with running_control_plane(root / "cp", node_names=names) as cp:
        fleet = start_nodes(cp, root, images, names)
        try:
            (root / "webhook").mkdir()
            hook = install(cp, root / "webhook")
            # As in tests/apiserver the webhook runs beside the cluster: the
            # installed Deployment (whose image is a registry's) runs nowhere.
            cp.kubectl("scale", "deployment/model-cache", "-n", "model-cache", "--replicas=0")
            try:
                with Cluster(cp, fleet, hook, root) as cluster:
                    yield cluster
            finally:
                hook.stop()
        finally:
            fleet.stop()
