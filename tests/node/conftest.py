"""Real nodes for the tests in this directory: the control plane of
tests/apiserver plus containerd, the kubelet and kube-scheduler (tests/node/node.py),
with model-cache installed as in tests/apiserver and the images of
scripts/node-images loaded. `cluster` is one node, `fleet` three (node-a,
node-b, node-c), started by the same code. One node set runs at a time (a
host-wide lock): the session keeps the one in use and swaps it when a test
asks for the other size; the fleet's tests run last, so each set starts once
(per xdist worker, in the "node" group), since a cold start costs about a minute.

Outside CI a machine that cannot run a node skips these tests with the reason;
under CI=true that is a failure (the `unavailable` marker, tests/conftest.py).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest

from tests.apiserver.controlplane import why_not as control_plane_why_not
from tests.node.cluster import Cluster, running_cluster
from tests.node.node import why_not as node_why_not
from tests.helpers import mark_real_cluster_tests

HERE = Path(__file__).resolve().parent
FLEET_SIZE = 3


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_real_cluster_tests(config, items, HERE, "node", lambda: control_plane_why_not() or node_why_not())
    # Single-node tests first, then the fleet's: one swap of node sets, not one per file.
    items.sort(key=lambda i: "fleet" in getattr(i, "fixturenames", ()))


class NodeSets:
    """The cluster in use, of one size at a time."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.size = 0
        self.current: Cluster | None = None
        self.stack = ExitStack()

    def get(self, size: int) -> Cluster:
        if self.current is None or self.size != size:
            self.close()
            root = self.factory.mktemp(f"node-cluster-{size}")
            self.current = self.stack.enter_context(running_cluster(root, nodes=size))
            self.size = size
        return self.current

    def close(self) -> None:
        self.current = None
        self.stack.close()


@pytest.fixture(scope="session")
def node_sets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSets]:
    sets = NodeSets(tmp_path_factory)
    try:
        yield sets
    finally:
        sets.close()


@pytest.fixture
def cluster(node_sets: NodeSets) -> Cluster:
    return node_sets.get(1)


@pytest.fixture
def fleet(node_sets: NodeSets) -> Cluster:
    return node_sets.get(FLEET_SIZE)
