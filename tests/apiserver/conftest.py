"""A real control plane for the tests in this directory: etcd, kube-apiserver
and kube-controller-manager built from the Go module proxy by scripts/k8s-bins
(tools/k8s-bins/go.mod), started on loopback ports once per pytest session
(per xdist worker), with model-cache installed from manifests/ through
tests/apiserver/overlay and `model-cache serve` running as its ServiceAccount.

Skips with the reason when the binaries were not built (no Go on the machine)
or kubectl (kustomize) is missing. docs/apiserver.md says more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

# tests/deploy imports running_control_plane and why_not from here still; their home is controlplane.py.
from tests.apiserver.controlplane import ControlPlane, running_control_plane, why_not
from tests.apiserver.served import Webhook, install
from tests.helpers import mark_real_cluster_tests

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_real_cluster_tests(config, items, HERE, "apiserver", why_not)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_control_plane(tmp_path_factory.mktemp("control-plane")) as cp:
        yield cp


@pytest.fixture(scope="session")
def webhook(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    hook = install(control_plane, tmp_path_factory.mktemp("webhook"))
    try:
        yield hook
    finally:
        hook.stop()
