"""Fixtures shared by every test directory. Helpers live in tests/helpers.py
and tests/server_process.py, not here."""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

# MODEL_CACHE, start_server and stop_server are still imported from here by
# tests/validate, tests/cli and tests/policy: they go once those import them
# from tests.helpers and tests.server_process.
from tests.helpers import MODEL_CACHE, POLICIES, cannot_run
from tests.server_process import RunningServer, start_server, stop_server

__all__ = ["MODEL_CACHE", "RunningServer", "start_server", "stop_server"]

# MODEL_CACHE_DRAGONFLY=0 (outside CI) leaves out Dragonfly's swarm tests, as
# scripts/test then leaves out their 47 min cold build; without the binaries
# they skip with the reason (a failure under CI=true).
_no_dragonfly = os.environ.get("MODEL_CACHE_DRAGONFLY") == "0" and os.environ.get("CI") != "true"
collect_ignore = ["dragonfly", "node/test_dragonfly.py"] if _no_dragonfly else []


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The webhook on the example policies, over TLS, shared by the tests of a worker."""
    tmp = tmp_path_factory.mktemp("server")
    policies = tmp / "policies"
    shutil.copytree(POLICIES, policies)
    running = start_server(tmp, policies)
    yield running
    stop_server(running)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `unavailable(reason)`: a real cluster this machine could
    not build or start (tests/helpers.cannot_run)."""
    marker = item.get_closest_marker("unavailable")
    if marker is not None:
        cannot_run(marker.args[0])
