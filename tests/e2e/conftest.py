"""A kind cluster with model-cache installed from manifests/, for tests marked
`e2e`. They run only when asked for (`pytest -m e2e tests/e2e`) and skip
with the reason when Docker, kind or kubectl is missing.

  MODEL_CACHE_E2E_CLUSTER   reuse this existing kind cluster (not deleted after)
  MODEL_CACHE_E2E_KEEP=1    keep the cluster the tests created
  KIND_NODE_IMAGE           node image for `kind create cluster`
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = "ghcr.io/model-cache/model-cache:0.1.0"
NS = "e2e"


def _why_not() -> str | None:
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no Docker engine reachable ({(probe.stderr.strip().splitlines() or ['docker info failed'])[-1]})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if HERE in Path(i.path).parents]
    if not mine:
        return
    reason = None
    markexpr = config.getoption("markexpr") or ""
    if "e2e" not in markexpr or "not e2e" in markexpr:
        reason = "kind end-to-end tests run only when selected: pytest -m e2e tests/e2e"
    else:
        reason = _why_not()
    for item in mine:
        item.add_marker(pytest.mark.e2e)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


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


def _run(*cmd: str, timeout: float = 1200) -> None:
    subprocess.run(cmd, check=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    reuse = os.environ.get("MODEL_CACHE_E2E_CLUSTER")
    name = reuse or f"model-cache-e2e-{uuid.uuid4().hex[:6]}"
    if reuse:
        _run("kind", "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig))
    else:
        cmd = ["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig),
               "--config", str(HERE / "kind.yaml"), "--wait", "120s"]
        if os.environ.get("KIND_NODE_IMAGE"):
            cmd += ["--image", os.environ["KIND_NODE_IMAGE"]]
        _run(*cmd)
    c = Cluster(name, kubeconfig)
    try:
        _run("docker", "build", "-t", IMAGE, ".")
        _run("kind", "load", "docker-image", IMAGE, "--name", name)
        install(c)
        yield c
    finally:
        if not reuse and os.environ.get("MODEL_CACHE_E2E_KEEP") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", name], check=False)


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
    _run("docker", "exec", f"{c.name}-control-plane", "install", "-d", "-m", "1777", "/var/lib/model-cache-e2e")
    c.kubectl("create", "namespace", NS, check=False)
    c.kubectl("apply", "-f", str(HERE / "origin.yaml"))
    c.kubectl("-n", NS, "rollout", "status", "deployment/model-origin", "--timeout=180s", timeout=240)
