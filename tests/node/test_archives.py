"""Archive sources on the memory strategy (issue 20): the tmpfs the mutation
sizes is all the downloader gets, so a tar must stream into it and a zip must
have been given room for itself beside its contents."""

from __future__ import annotations

from typing import Callable

import pytest

from tests.helpers import tar_archive, zip_archive
from tests.node.cluster import SERVER, Cluster, seeded, sha256
from tests.node.node import pod_report, wait_pods_running
from tests.node.test_strategies import MiB, model_files

CONTENTS = {"config.json": seeded("arch-config", 4000), "model.safetensors": seeded("arch-weights", 5 * MiB),
            "tokenizer/vocab.txt": seeded("arch-vocab", 300_000)}
# The policy's size is the unpacked model, with under 1Mi to spare: an
# archive kept beside its contents could never fit in a tmpfs of this size.
SIZE = "6Mi"


@pytest.mark.parametrize("suffix, build", [(".tar.gz", tar_archive), (".zip", zip_archive)])
def test_a_memory_pod_with_an_archive_source_starts(cluster: Cluster, suffix: str, build: Callable[..., bytes]) -> None:
    archive = build(CONTENTS)
    path = f"/archives/model{suffix}"
    cluster.origin.files[path] = archive
    ns = cluster.namespace(f"node-archive-{suffix.strip('.').replace('.', '-')}", {"packed": {
        "source": f"{cluster.origin.url}{path}", "sha256": sha256(archive), "size": SIZE, "strategy": "memory"}})
    cluster.deploy(ns, "asr", cluster.model_pod("packed"), replicas=1)

    (pod,) = wait_pods_running(cluster.cp, ns, "app=asr", 1, cluster.node)

    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert model_files(report) == {name: sha256(data) for name, data in CONTENTS.items()}
    downloader = next(s for s in pod.status.init_container_statuses if s.name == "model-cache-download")
    assert downloader.restart_count == 0


def test_an_archive_bomb_stops_at_its_budget_with_exit_10(cluster: Cluster) -> None:
    """A 64 MiB run of zeros (64 KiB gzipped) for a model whose policy says
    6Mi: the downloader stops at 6.3Mi with exit 10 and says why in the
    pod's status; the memory volume is never filled."""
    from tests.apiserver.controlplane import wait_for

    bomb = tar_archive({"config.json": b"{}", "zeros.bin": bytes(64 * MiB)})
    path = "/archives/bomb.tar.gz"
    cluster.origin.files[path] = bomb
    ns = cluster.namespace("node-archive-bomb", {"packed": {
        "source": f"{cluster.origin.url}{path}", "sha256": sha256(bomb), "size": SIZE, "strategy": "memory"}})
    cluster.run_pod(ns, "bomb", cluster.model_pod("packed"))

    def refused() -> object:
        pod = cluster.cp.core.read_namespaced_pod("bomb", ns)
        for s in pod.status.init_container_statuses or []:
            done = s.state.terminated or s.last_state.terminated
            if s.name == "model-cache-download" and done is not None:
                return done
        return None

    done = wait_for("the downloader of bomb to end", refused, timeout=180, every=0.5)
    assert done.exit_code == 10, done
    assert "the archive of model packed unpacks to more than its budget of 6.3Mi (the policy's `size` 6Mi + 5%)" \
        in done.message, done.message
    assert "zeros.bin" in done.message and "nothing was published" in done.message
