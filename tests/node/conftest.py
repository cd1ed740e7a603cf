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

from tests.apiserver.controlplane import why_not as control_plane_why_not
from tests.node.cluster import Cluster, running_cluster
from tests.node.node import why_not as node_why_not
from tests.helpers import mark_real_cluster_tests

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_real_cluster_tests(config, items, HERE, "node", lambda: control_plane_why_not() or node_why_not())


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("node-cluster")) as c:
        yield c
