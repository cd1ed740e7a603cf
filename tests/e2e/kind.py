"""The kind cluster the e2e tests run in, model-cache installed into it, and
the pods they create there."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import REPO

HERE = Path(__file__).resolve().parent
IMAGE = "ghcr.io/model-cache/model-cache:0.1.0"
NS = "e2e"


@dataclass
class Cluster:
    name: str
    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def wait_until(self, what: str, check: Any, timeout: float = 180, every: float = 2) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
                if last:
                    return last
            except AssertionError as err:
                last = err
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}; last: {last}")


def run(*cmd: str, timeout: float = 1200) -> None:
    subprocess.run(cmd, check=True, timeout=timeout, cwd=REPO)


def install(c: Cluster) -> None:
    """`kubectl apply -k` of manifests/ (through an overlay that only adds the
    e2e namespace's policy), then waits for a self-certified, ready webhook."""
    c.kubectl("apply", "-k", str(HERE / "overlay"))
    c.kubectl("-n", "model-cache", "rollout", "status", "deployment/model-cache", "--timeout=240s", timeout=300)

    def patched() -> bool:
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            for hook in c.get(kind, "model-cache")["webhooks"]:
                if not hook["clientConfig"].get("caBundle"):
                    return False
        return True

    c.wait_until("both caBundles patched", patched, timeout=120)
    # A hostPath directory is created by the kubelet as root, 0755: the
    # downloader runs as non-root, so a node needs it prepared, as an admin
    # would (docs/install.md says so).
    run("docker", "exec", f"{c.name}-control-plane", "install", "-d", "-m", "1777", "/var/lib/model-cache-e2e")
    c.kubectl("create", "namespace", NS, check=False)
    c.kubectl("apply", "-f", str(HERE / "origin.yaml"))
    c.kubectl("-n", NS, "rollout", "status", "deployment/model-origin", "--timeout=180s", timeout=240)


def sleeper(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A pod in NS that only sleeps, in the webhook's image (already on the
    nodes): it stands for a model server."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": dict(annotations)},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "serve", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            }],
        },
    }
