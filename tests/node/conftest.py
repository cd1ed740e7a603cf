"""A real node for the tests in this directory: the control plane of
tests/apiserver plus containerd, the kubelet and kube-scheduler (tests/node/node.py),
with model-cache installed as in tests/apiserver and the images of
scripts/node-images loaded. One per pytest session (per xdist worker, in the
"node" group), since a cold start costs about a minute.

Outside CI a machine that cannot run a node skips these tests with the reason;
under CI=true that is a failure (the `unavailable` marker, tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.apiserver.controlplane import running_control_plane
from tests.apiserver.controlplane import why_not as control_plane_why_not
from tests.apiserver.served import install
from tests.node.cluster import Cluster
from tests.node.node import build_images, start_node
from tests.node.node import why_not as node_why_not

HERE = Path(__file__).resolve().parent


# Before xdist's own hook, which reads the group marker into the test's id.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if HERE in Path(i.path).parents]
    if not mine:
        return
    reason = control_plane_why_not() or node_why_not()
    grouped = config.pluginmanager.hasplugin("xdist")  # its marker is unknown under -p no:xdist
    for item in mine:
        if grouped:
            item.add_marker(pytest.mark.xdist_group("node"))
        if reason:
            item.add_marker(pytest.mark.unavailable(reason))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    images = build_images()
    root = tmp_path_factory.mktemp("node-cluster")
    with running_control_plane(root / "cp") as cp:
        node = start_node(cp, root / "node", images)
        try:
            (root / "webhook").mkdir()
            hook = install(cp, root / "webhook")
            # As in tests/apiserver the webhook runs beside the cluster: the
            # installed Deployment (whose image is a registry's) runs nowhere.
            cp.kubectl("scale", "deployment/model-cache", "-n", "model-cache", "--replicas=0")
            try:
                with Cluster(cp, node, hook, root) as c:
                    yield c
            finally:
                hook.stop()
        finally:
            node.stop()
