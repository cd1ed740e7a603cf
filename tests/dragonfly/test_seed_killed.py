"""The seed peer SIGKILLed while it is fetching a model from the origin: both
nodes still finish with the right bytes, and the origin's traffic stays
bounded by the scheduler's back-to-source limit (swarm.BACK_TO_SOURCE_COUNT:
the seed and at most one more peer per task), not one download per node.
A swarm of its own: the session's keeps its seed."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.apiserver.controlplane import wait_for
from tests.download.origin import Origin
from tests.download.support import model_files
from tests.dragonfly.support import MiB, env_for, finish, hub_model, start, through, weights_served
from tests.dragonfly.swarm import Swarm, running_swarm


@pytest.fixture
def own_swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    with running_swarm(tmp_path_factory.mktemp("dragonfly-seedkill"), 2) as sw:
        sw.wait_seed_known()
        yield sw


def test_seed_killed_mid_download(own_swarm: Swarm, origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    repo = hub_model(origin, "seedkill", big=32 * MiB)
    origin.throttle = 0.02  # about 3 MB/s: the seed is still fetching when it is killed
    env = env_for(dl_env, origin)
    nodes = [own_swarm.daemons["node1"], own_swarm.daemons["node2"]]
    procs = [start(env, "seedkill", tmp_path / n.name / "seedkill" / "main", *through(n)) for n in nodes]
    wait_for("the seed to fetch a piece of the weights", lambda: weights_served(origin, "seedkill") > 4 * MiB,
             timeout=60)
    own_swarm.kill(own_swarm.daemons["seed"])
    origin.throttle = 0.0
    for p, n in zip(procs, nodes):
        code, out = finish(p)
        assert code == 0, out
        assert model_files(tmp_path / n.name / "seedkill" / "main") == repo.files
    size = len(repo.files["model.safetensors"])
    # The seed's partial fetch, and at most one more peer back to the origin.
    assert weights_served(origin, "seedkill") <= 2.1 * size, (weights_served(origin, "seedkill"), size)
