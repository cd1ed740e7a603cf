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

HERE = Path(__file__).resolve().parent


# Before xdist's own hook, which reads the group marker into the test's id.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if HERE in Path(i.path).parents]
    if not mine:
        return
    reason = why_not()
    grouped = config.pluginmanager.hasplugin("xdist")  # its marker is unknown under -p no:xdist
    for item in mine:
        # One control plane per worker: under `--dist loadgroup` they all share one.
        if grouped:
            item.add_marker(pytest.mark.xdist_group("apiserver"))
        if reason:
            item.add_marker(pytest.mark.unavailable(reason))


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
