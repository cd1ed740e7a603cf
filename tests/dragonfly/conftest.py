"""Dragonfly for the tests in this directory: the scheduler, a seed peer and
daemons of scripts/dragonfly-bins on loopback (swarm.py), and the Hub-protocol
origin of tests/download. Without the binaries the tests skip with the
reason; under CI=true that is a failure (the `unavailable` marker)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.download.conftest import dl_env, origin  # noqa: F401 - fixtures shared with tests/download
from tests.dragonfly.swarm import Swarm, running_swarm, why_not
from tests.helpers import mark_real_cluster_tests

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_real_cluster_tests(config, items, HERE, "dragonfly", why_not)


@pytest.fixture(scope="session")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """A scheduler, a seed and two daemons, the seed known to the scheduler."""
    with running_swarm(tmp_path_factory.mktemp("dragonfly"), 2) as sw:
        sw.wait_seed_known()
        yield sw
