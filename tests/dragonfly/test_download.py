"""The downloader through a real dfdaemon, scheduler and seed peer
(tests/dragonfly/swarm.py), from the Hub-protocol origin of tests/download:
two nodes, one origin download; the daemon killed mid-download (direct or
refused, as the policy says). A daemon that is not there at all:
tests/download/test_dragonfly_fallback.py, which needs no build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.apiserver.controlplane import wait_for
from tests.download.origin import Origin
from tests.download.support import model_files
from tests.dragonfly.support import COMMIT, MiB, env_for, finish, hub_model, start, through, weights_served
from tests.dragonfly.swarm import Daemon, Swarm

def test_two_nodes_one_origin_download(swarm: Swarm, origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    repo = hub_model(origin, "shared")
    env = env_for(dl_env, origin)
    nodes = [swarm.daemons["node1"], swarm.daemons["node2"]]
    procs = [start(env, "shared", tmp_path / n.name / "shared" / "main", *through(n)) for n in nodes]
    results = [finish(p) for p in procs]
    for (code, out), n in zip(results, nodes):
        assert code == 0, out
        assert "downloading through the node's dfdaemon" in out, out
        assert model_files(tmp_path / n.name / "shared" / "main") == repo.files
        marker = json.loads((tmp_path / n.name / "shared" / "main" / ".model-cache.json").read_text())
        assert marker["resolved_revision"] == COMMIT
    size = len(repo.files["model.safetensors"])
    # Two nodes, one origin download of the weights (Dragonfly's own probes are empty ranges).
    assert weights_served(origin, "shared") <= 1.1 * size, (weights_served(origin, "shared"), size)


@pytest.mark.parametrize("mode", ["direct", "refuse"])
def test_daemon_killed_mid_download(swarm: Swarm, origin: Origin, dl_env: dict[str, str], tmp_path: Path,
                                    mode: str) -> None:
    """The node's daemon is SIGKILLed while the origin is half-way through the
    weights: direct finishes from the origin with a line saying so; refuse
    fails (the partial download kept), and the next start, with a daemon
    back on the node's socket, completes it."""
    name = f"killed-{mode}"
    repo = hub_model(origin, name, big=32 * MiB)
    # About 3 MB/s: the kill lands while the weights are still coming. (Not a
    # gate: the daemon's one-byte probes would wait on it too.)
    origin.throttle = 0.02
    node = swarm.add(f"victim-{mode}")
    env = env_for(dl_env, origin)
    dest = tmp_path / name / "main"
    p = start(env, name, dest, *through(node, mode))
    wait_for("the origin to send a piece of the weights", lambda: weights_served(origin, name) > 4 * MiB, timeout=60)
    swarm.kill(node)
    origin.throttle = 0.0
    code, out = finish(p)
    if mode == "direct":
        assert code == 0, out
        assert "downloading straight from the origin" in out, out
        assert model_files(dest) == repo.files
        return
    assert code == 7, out
    assert "ifUnavailable: refuse" in out, out
    assert not dest.exists()
    # A daemon back on the same socket (a new address: the old one's ports linger in TIME_WAIT).
    again = Daemon(f"victim-{mode}", f"{swarm.net}{swarm._next_host}", node.dir, seed=False)
    swarm._next_host += 1
    swarm.daemons[again.name] = again
    swarm.start(again)
    code, out = finish(start(env, name, dest, *through(again, mode)))
    assert code == 0, out
    assert model_files(dest) == repo.files
