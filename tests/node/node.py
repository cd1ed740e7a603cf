"""A real node beside the control plane of tests/apiserver: containerd, the
kubelet and kube-scheduler, built by scripts/node-bins and scripts/k8s-bins,
with the images of scripts/node-images loaded into containerd.

containerd and the kubelet run in one private mount namespace
(`unshare --mount`), over bind mounts of a state directory on /var/lib,
/var/log and /run and of their own values on the sysctls the kubelet would
otherwise set on the host: every mount they make goes away with them and the
host's settings stay as they were (shared/notes/real-node.md).

The same code starts one node or several (a fleet, shared/notes/multi-node.md):
each has its own state directory and mount namespace, its own cgroup root
(`cgroupRoot: /node-a`, so that the kubelets do not take each other's pods
for orphans), name, ports and CNI subnet, and its own directory bind-mounted
behind the hostPath cache path: the same policy path is a different disk on
each node, as on a real fleet. One kube-scheduler serves them all.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import NODE_NAME, ControlPlane, Proc, bins_dir, spawn, wait_for, write_kubeconfig
from tests.helpers import REPO, free_port

NODE_BINARIES = ("kubelet", "kube-scheduler")
NODE_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "pause", "cni/loopback", "cni/host-local", "cni/isolated")
# The kubelet sets these on the host unless they already hold its values.
KUBELET_SYSCTLS = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Where the policies of the fleet tests keep hostpath models, as in the
# policy's default: on each node, its own directory is mounted there.
CACHE_PATH = "/var/lib/model-cache"
FLEET = ("node-a", "node-b", "node-c")
# One node set per host at a time: two sets would share the cgroup roots
# /node-a.. and kill each other's containers. A second test run (or
# bench/bench_node.py) waits for the first.
HOST_LOCK = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "model-cache" / "node.lock"
HOST_LOCK_WAIT = 1200.0


@dataclass(frozen=True)
class Image:
    name: str
    reference: str
    archive: Path
    manifest: Path | None = None


def node_bins_dir() -> Path:
    out = subprocess.run([str(REPO / "scripts" / "node-bins"), "--dir"], check=True, capture_output=True,
                         text=True, timeout=30).stdout.strip()
    return Path(out)


def why_not() -> str | None:
    """Why this machine cannot run a node, or None."""
    if os.geteuid() != 0:
        return "a node needs root (mount namespaces, cgroups, runc)"
    for tool in ("runc", "unshare", "nsenter", "buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run scripts/node-bins (scripts/test does)"
    k8s_bins = bins_dir()
    missing = [b for b in NODE_BINARIES if not (k8s_bins / b).is_file()]
    if missing:
        return f"{', '.join(missing)} not built in {k8s_bins}: run scripts/k8s-bins (scripts/test does)"
    node_bins = node_bins_dir()
    missing = [b for b in NODE_TOOLS if not (node_bins / b).is_file()]
    if missing:
        return f"{', '.join(missing)} not built in {node_bins}: run scripts/node-bins (scripts/test does)"
    if not (CGROUP_ROOT / "memory").is_dir():
        return "no cgroup v1 memory controller at /sys/fs/cgroup/memory (the node is set up for cgroup v1)"
    return None


def build_images() -> dict[str, Image]:
    """What scripts/node-images built (building what is missing)."""
    proc = subprocess.run([str(REPO / "scripts" / "node-images")], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/node-images failed:\n{proc.stderr[-4000:]}")
    images = {}
    for line in proc.stdout.splitlines():
        name, ref, archive, *rest = line.split()
        images[name] = Image(name, ref, Path(archive), Path(rest[0]) if rest else None)
    return images


NODE_SCRIPT = """\
set -eu
state=$1
for kv in {sysctls}; do
  k=${{kv%=*}}; f=$state/sysctl/$(echo "$k" | tr / _); echo "${{kv#*=}}" > "$f"; mount --bind "$f" /proc/sys/$k
done
mount --bind "$state/varlib" /var/lib
mount --bind "$state/varlog" /var/log
mount --bind "$state/run" /run
# This node's own disk behind the hostPath cache path (kubelet and containerd
# resolve hostPath volumes in this namespace).
mkdir -p {cache_path}
mount --bind "$state/cache" {cache_path}
echo $$ > "$state/namespace.pid"
"$state/bin/containerd" --config "$state/containerd.toml" >"$state/containerd.log" 2>&1 &
echo $! > "$state/containerd.pid"
while [ ! -S /run/containerd/containerd.sock ]; do
  kill -0 $(cat "$state/containerd.pid") || exit 1
  sleep 0.1
done
touch "$state/containerd.ready"
while [ ! -e "$state/images.loaded" ]; do sleep 0.1; done
exec "$state/bin/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \\
  --hostname-override {node} --v 2
"""


@dataclass
class Node:
    cp: ControlPlane
    state: Path
    images: dict[str, Image]
    name: str = NODE_NAME
    cgroup: str = "node-a"  # its cgroupRoot, under every /sys/fs/cgroup/<controller>
    procs: list[Proc] = field(default_factory=list)

    @property
    def host_var_lib(self) -> Path:
        """What the node's /var/lib is on the host (hostPath volumes live there)."""
        return self.state / "varlib"

    @property
    def cache(self) -> Path:
        """The host directory behind CACHE_PATH on this node."""
        return self.state / "cache"

    def ctr(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        sock = self.state / "run" / "containerd" / "containerd.sock"
        return subprocess.run([str(self.state / "bin" / "ctr"), "--address", str(sock), "-n", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout, check=check)

    def logs(self) -> str:
        return "\n".join(p.tail(60) for p in self.procs) + "\n" + _tail(self.state / "containerd.log", 40)

    def stop(self) -> None:
        """The pods' tasks, the kubelet, containerd and the shims they left;
        last whatever still runs in its cgroups, and the cgroups themselves."""
        try:
            for task in self.ctr("tasks", "list", "-q", timeout=30).stdout.split():
                self.ctr("tasks", "kill", "-s", "SIGKILL", task, timeout=30, check=False)
        except (subprocess.SubprocessError, OSError):
            pass  # containerd already gone: the cgroup sweep below catches what runs
        for p in self.procs:
            p.stop(grace=15)
        _kill_shims(self.state)
        _remove_cgroups(self.cgroup)


@dataclass
class NodeSet:
    """Nodes started together, with the one scheduler that places pods on them."""

    nodes: list[Node]
    scheduler: Proc | None = None
    lock_fd: int | None = None

    def logs(self) -> str:
        return "\n".join(n.logs() for n in self.nodes) + ("\n" + self.scheduler.tail(30) if self.scheduler else "")

    def stop(self) -> None:
        """The scheduler first (nothing new is placed), then every node."""
        try:
            if self.scheduler is not None:
                self.scheduler.stop()
            errors = []
            for node in self.nodes:
                try:
                    node.stop()
                except (RuntimeError, OSError) as err:
                    errors.append(err)
            if errors:
                raise errors[0]
        finally:
            if self.lock_fd is not None:
                os.close(self.lock_fd)  # releases the host's node lock
                self.lock_fd = None


def _host_lock() -> int:
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + HOST_LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise RuntimeError(f"another node has held {HOST_LOCK} for {HOST_LOCK_WAIT:.0f}s "
                                   "(a test run or bench/bench_node.py): stop it, or wait") from None
            time.sleep(1)


def node_names(count: int) -> tuple[str, ...]:
    """One node keeps this machine's name (its /etc/hosts resolves it);
    several are node-a, node-b, ..."""
    return (NODE_NAME,) if count == 1 else FLEET[:count]


def start_nodes(cp: ControlPlane, root: Path, images: dict[str, Image], names: tuple[str, ...]) -> NodeSet:
    """NAMES as nodes (state under ROOT/<name>, or ROOT/node for the single
    node of old), started side by side, Ready and untainted when this returns."""
    k8s_bins = bins_dir()
    cp.kubectl("create", "clusterrolebinding", "nodes-system-node", "--clusterrole=system:node",
               "--group=system:nodes", check=False)
    nodes = NodeSet([], lock_fd=_host_lock())
    try:
        for i, name in enumerate(names):
            state = root / ("node" if len(names) == 1 else name)
            nodes.nodes.append(_launch_node(cp, state, images, name, i))
        for node in nodes.nodes:
            wait_for(f"containerd's socket on {node.name}", (node.state / "containerd.ready").exists,
                     procs=tuple(node.procs), timeout=60)
        # Each node imports its own copy, as a real node pulls its own.
        threads = [threading.Thread(target=_import_images, args=(n,)) for n in nodes.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for node in nodes.nodes:
            if not (node.state / "images.loaded").exists():
                raise RuntimeError(f"importing the images into {node.name} failed:\n{node.logs()}")
        nodes.scheduler = spawn("kube-scheduler", [
            str(k8s_bins / "kube-scheduler"), "--kubeconfig", str(cp.kubeconfig),
            "--authentication-kubeconfig", str(cp.kubeconfig), "--authorization-kubeconfig", str(cp.kubeconfig),
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()), "--leader-elect=false", "--v", "1",
        ], root / "kube-scheduler.log")
        procs = tuple(p for n in nodes.nodes for p in n.procs) + (nodes.scheduler,)
        for node in nodes.nodes:
            wait_for(f"node {node.name} Ready and schedulable", lambda: _ready(cp, node.name), procs=procs,
                     timeout=120)
        return nodes
    except BaseException:
        nodes.stop()
        raise


def _import_images(node: Node) -> None:
    try:
        for image in node.images.values():
            node.ctr("images", "import", str(image.archive))
    except subprocess.CalledProcessError as err:
        (node.state / "images.failed").write_text(err.stderr or "")
        return
    (node.state / "images.loaded").touch()


def _launch_node(cp: ControlPlane, state: Path, images: dict[str, Image], name: str, index: int) -> Node:
    """Node number INDEX: containerd started, the kubelet waiting for the images."""
    k8s_bins, node_bins = bins_dir(), node_bins_dir()
    state.mkdir(parents=True, exist_ok=True)
    for d in ("varlib", "varlog", "run", "sysctl", "bin", "cni-conf", "cni-bin", "cache"):
        (state / d).mkdir(exist_ok=True)
    for binary in ("containerd", "containerd-shim-runc-v2", "ctr"):
        shutil.copy2(node_bins / binary, state / "bin" / binary)
    shutil.copy2(k8s_bins / "kubelet", state / "bin" / "kubelet")
    for plugin in ("loopback", "host-local", "isolated"):
        shutil.copy2(node_bins / "cni" / plugin, state / "cni-bin" / plugin)
    (state / "cni-conf" / "10-isolated.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "isolated",
        "plugins": [{"type": "isolated", "ipam": {"type": "host-local",
                                                   "ranges": [[{"subnet": f"10.244.{index}.0/24"}]],
                                                   "dataDir": str(state / "cni-ipam")}}],
    }))
    registries = state / "registries" / "_default"
    registries.mkdir(parents=True, exist_ok=True)
    (registries / "hosts.toml").write_text('server = "http://127.0.0.1:9"\n')
    (state / "containerd.toml").write_text(_containerd_config(state, images["pause"].reference))
    cgroup = f"node-{chr(ord('a') + index)}"
    _make_cgroup_root(cgroup)
    (state / "kubelet.yaml").write_text(yaml.safe_dump(_kubelet_config(free_port(), free_port(), cgroup)))
    write_kubeconfig(state / "kubelet.kubeconfig", cp.url, cp.ca, cp.kubelet_tokens[name], f"system:node:{name}")
    script = state / "node.sh"
    sysctls = " ".join(f"{k}={v}" for k, v in KUBELET_SYSCTLS.items())
    script.write_text(NODE_SCRIPT.format(sysctls=sysctls, node=name, cache_path=CACHE_PATH))
    env = {"PATH": f"{state / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    node = Node(cp, state, images, name=name, cgroup=cgroup)
    node.procs.append(spawn(f"node {name} (containerd + kubelet)",
                            ["unshare", "--mount", "--propagation", "private", "sh", str(script), str(state)],
                            state / "kubelet.log", env=env))
    return node


def _make_cgroup_root(name: str) -> None:
    """The kubelet wants its cgroupRoot to exist under every controller
    ("cgroup [node-a] has some missing paths"); cpuset's needs its cpus and
    mems before anything can join it."""
    for controller in _controllers():
        d = controller / name
        d.mkdir(exist_ok=True)
        for key in ("cpuset.cpus", "cpuset.mems"):
            if (controller / key).exists() and not (d / key).read_text().strip():
                (d / key).write_text((controller / key).read_text())


def _controllers() -> list[Path]:
    return [c for c in CGROUP_ROOT.iterdir() if c.is_dir() and not c.is_symlink()]


def _ready(cp: ControlPlane, name: str) -> bool:
    node = cp.core.read_node(name)
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    tainted = any(t.effect == "NoSchedule" for t in node.spec.taints or [])
    return ready and not tainted


def _containerd_config(state: Path, sandbox_image: str) -> str:
    return f"""\
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.registry]
    # Every registry is 127.0.0.1:9 (nothing listens): an image the tests
    # did not load fails at once, and no lookup or pull leaves the machine.
    config_path = "{state / 'registries'}"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{sandbox_image}"
[plugins.'io.containerd.cri.v1.runtime']
  # This machine's root lacks CAP_SYS_RESOURCE: runc cannot lower a sandbox's
  # oom_score_adj below containerd's own, and every sandbox would fail.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{shutil.which('runc')}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{state / 'cni-bin'}"]
    conf_dir = "{state / 'cni-conf'}"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def _kubelet_config(port: int, healthz_port: int, cgroup: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "127.0.0.1", "port": port, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},  # listens on loopback only
        "cgroupDriver": "cgroupfs",
        # Its own root: kubelets sharing /kubepods kill each other's containers.
        "cgroupRoot": f"/{cgroup}", "cgroupsPerQOS": True,
        # Else every kubelet writes its KUBE-* chains into the host's iptables.
        "makeIPTablesUtilChains": False,
        "failCgroupV1": False,  # this machine runs cgroup v1
        "failSwapOn": False,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "volumePluginDir": "/var/lib/kubelet/volume-plugins",
        "resolvConf": "/etc/resolv.conf",
        # The host's disk is shared with everything else: never evict or
        # garbage-collect the test's images for the host's disk use.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "syncFrequency": "5s", "fileCheckFrequency": "5s",
        "serializeImagePulls": False,
    }


def _kill_shims(state: Path) -> None:
    """Shims re-parent to PID 1 when containerd goes; ours run from the
    state directory's copy of the binary."""
    needle = str(state / "bin" / "containerd-shim-runc-v2").encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(needle):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _remove_cgroups(root: str) -> None:
    """Whatever still runs in the cgroups under ROOT (a pod sandbox's pause,
    once its shim is gone, is reparented to PID 1 and lives on) is killed;
    then the trees go, depth first, ROOT itself last. One deadline for all."""
    tops = [c / root for c in _controllers() if (c / root).is_dir()]
    deadline = time.monotonic() + 30
    while True:
        pids = {int(pid) for top in tops for d in _subdirs(top) for pid in _read_lines(d / "tasks")}
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        busy = [d for top in tops for d in _depth_first(top) if not _removed(d)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"cgroups still busy after 30 s: {busy[:3]}")
        time.sleep(0.2)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _subdirs(top: Path) -> list[Path]:
    """TOP and every directory under it that exists while it is walked: the
    kubelet and containerd remove cgroups of their own at the same time
    (pathlib's rglob raises on a directory that goes away; os.walk skips it)."""
    return [Path(dirpath) for dirpath, _dirs, _files in os.walk(top)]


def _depth_first(top: Path) -> list[Path]:
    return sorted(_subdirs(top), key=lambda p: len(p.parts), reverse=True)


def _removed(d: Path) -> bool:
    try:
        d.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _tail(path: Path, lines: int) -> str:
    try:
        return f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def pod_report(cp: ControlPlane, namespace: str, pod: str, container: str) -> dict[str, Any]:
    """The MODEL-REPORT line the model-server container printed. A container
    just Ready may not have its log line read back yet (seen: an empty log
    from a Running pod), so the log is read until the line is there."""
    text = ""

    def report() -> dict[str, Any] | None:
        nonlocal text
        text = cp.core.read_namespaced_pod_log(pod, namespace, container=container)
        for line in text.splitlines():
            if line.startswith("MODEL-REPORT "):
                return json.loads(line.removeprefix("MODEL-REPORT "))
        return None

    try:
        return wait_for(f"MODEL-REPORT in {namespace}/{pod}/{container}", report, timeout=30, every=0.5)
    except RuntimeError:
        pass
    raise AssertionError(f"no MODEL-REPORT in the log of {namespace}/{pod}/{container}:\n{text[-2000:]}")


def downloader_log(cp: ControlPlane, namespace: str, pod: str) -> str:
    return cp.core.read_namespaced_pod_log(pod, namespace, container="model-cache-download")


def wait_pods_running(cp: ControlPlane, namespace: str, selector: str, count: int, node: Node | NodeSet,
                      timeout: float = 240) -> list[k8s.V1Pod]:
    def running() -> list[k8s.V1Pod] | None:
        pods = cp.core.list_namespaced_pod(namespace, label_selector=selector).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        ok = [p for p in live if p.status.phase == "Running"
              and all(s.ready for s in p.status.container_statuses or [])]
        return ok if len(ok) >= count else None

    try:
        return wait_for(f"{count} pods of {namespace}/{selector} Running", running, timeout=timeout, every=0.5)
    except RuntimeError as err:
        raise AssertionError(f"{err}\n{describe_pods(cp, namespace, selector)}\n{node.logs()}") from None


def describe_pods(cp: ControlPlane, namespace: str, selector: str = "") -> str:
    out = []
    for p in cp.core.list_namespaced_pod(namespace, label_selector=selector).items:
        out.append(f"pod {p.metadata.name}: {p.status.phase} on {p.spec.node_name}")
        for s in (p.status.init_container_statuses or []) + (p.status.container_statuses or []):
            out.append(f"  {s.name}: ready={s.ready} restarts={s.restart_count} state={s.state.to_dict()}")
            if s.restart_count:
                try:
                    log = cp.core.read_namespaced_pod_log(p.metadata.name, namespace, container=s.name, previous=True)
                except ApiException as err:
                    log = f"(no log: {err.reason})"
                out.append("    last run's log: " + "\n    ".join(log.splitlines()[-15:]))
    events = cp.core.list_namespaced_event(namespace).items
    out += [f"event {e.involved_object.name}: {e.reason}: {e.message}" for e in events[-30:]]
    return "\n".join(out)
