"""A kind cluster with model-cache installed from manifests/, for tests marked
`e2e`. They run only when asked for (`pytest -m e2e tests/e2e`) and skip
with the reason when Docker, kind or kubectl is missing.

  MODEL_CACHE_E2E_CLUSTER   reuse this existing kind cluster (not deleted after)
  MODEL_CACHE_E2E_KEEP=1    keep the cluster the tests created
  KIND_NODE_IMAGE           node image for `kind create cluster`
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.kind import HERE, IMAGE, Cluster, install, run


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


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    reuse = os.environ.get("MODEL_CACHE_E2E_CLUSTER")
    name = reuse or f"model-cache-e2e-{uuid.uuid4().hex[:6]}"
    if reuse:
        run("kind", "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig))
    else:
        cmd = ["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig),
               "--config", str(HERE / "kind.yaml"), "--wait", "120s"]
        if os.environ.get("KIND_NODE_IMAGE"):
            cmd += ["--image", os.environ["KIND_NODE_IMAGE"]]
        run(*cmd)
    c = Cluster(name, kubeconfig)
    try:
        run("docker", "build", "-t", IMAGE, ".")
        run("kind", "load", "docker-image", IMAGE, "--name", name)
        install(c)
        yield c
    finally:
        if not reuse and os.environ.get("MODEL_CACHE_E2E_KEEP") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", name], check=False)
