"""The seed peer SIGKILLed while it is fetching a model from the origin: every
node still finishes with the right bytes, through its daemon (none falls back
to a direct download), and no node fetches the model from the origin more
than once. What Dragonfly bounds after the kill is how many peers go to the
origin at a time (the back-to-source limit: two), not the total: once a
peer has finished, the next one stuck without a parent may go too. Seen:
1.00x of the weights after the kill on a quiet machine, 4.00x (each node
once) in a loaded suite. A swarm of its own: the session's keeps its seed."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.apiserver.controlplane import wait_for
from tests.download.origin import Origin
from tests.download.support import model_files
from tests.dragonfly.support import MiB, env_for, finish, hub_model, start, through, weights_served
from tests.dragonfly.swarm import Swarm, running_swarm

NODES = 4


@pytest.fixture
def own_swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    with running_swarm(tmp_path_factory.mktemp("dragonfly-seedkill"), NODES) as sw:
        sw.wait_seed_known()
        yield sw


def test_seed_killed_mid_download(own_swarm: Swarm, origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    repo = hub_model(origin, "seedkill", big=32 * MiB)
    origin.throttle = 0.02  # about 3 MB/s: the seed is still fetching when it is killed
    env = env_for(dl_env, origin)
    nodes = [own_swarm.daemons[f"node{i}"] for i in range(1, NODES + 1)]
    procs = [start(env, "seedkill", tmp_path / n.name / "seedkill" / "main", *through(n)) for n in nodes]
    wait_for("the seed to fetch a piece of the weights", lambda: weights_served(origin, "seedkill") > 4 * MiB,
             timeout=60)
    own_swarm.kill(own_swarm.daemons["seed"])
    at_kill = weights_served(origin, "seedkill")
    origin.throttle = 0.0
    for p, n in zip(procs, nodes):
        code, out = finish(p)
        assert code == 0, out
        assert "downloading straight from the origin" not in out, out
        assert model_files(tmp_path / n.name / "seedkill" / "main") == repo.files
    size = len(repo.files["model.safetensors"])
    after = weights_served(origin, "seedkill") - at_kill
    # At most once per node, and what the seed had in flight at the kill.
    assert after <= NODES * size + 4 * MiB, (after / size, at_kill / size)
