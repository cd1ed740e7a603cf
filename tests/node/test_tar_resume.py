"""A killed tar download resumes (issue 26, item 4), on the real node: the
downloader is killed with SIGKILL half-way through the archive, the kubelet
restarts it, and the origin sends little more than the archive once.

- a plain `.tar` on the memory strategy (a tmpfs sized for the contents
  only, so the tar streams) resumes from its last checkpoint on the volume;
- a `.tar.gz` on a claim with room is kept on the volume, fetched
  resumably, then unpacked: the rerun fetches only what the volume lacks.
"""

from __future__ import annotations

import pytest

from tests.helpers import tar_archive
from tests.node.cluster import SERVER, Cluster, downloader_killed_half_way, seeded, sha256
from tests.node.node import downloader_log, pod_report, wait_pods_running
from tests.node.test_strategies import MiB, model_files

pytestmark = pytest.mark.timeout(600)

CONTENTS = {"config.json": seeded("tar-config", 4000), "model-00001.safetensors": seeded("tar-w1", 12 * MiB),
            "model-00002.safetensors": seeded("tar-w2", 8 * MiB), "tokenizer.json": seeded("tar-tok", 300_000)}
GOAL = 1.1  # origin bytes / archive after a kill (the goal)


def _kill_half_way(cluster: Cluster, ns: str, model: str, path: str, archive: bytes, **settings: str) -> str:
    """Deploys a pod of MODEL from the archive at PATH, kills its downloader
    when the origin has sent half the archive, checks what the running pod
    reads and what the origin sent, and returns the downloader's log."""
    cluster.origin.files[path] = archive
    ns = cluster.namespace(ns, {model: {"source": f"{cluster.origin.url}{path}", "sha256": sha256(archive),
                                        **settings}})
    if settings.get("strategy") != "memory":
        cluster.local_pvc(ns)
    with downloader_killed_half_way(cluster, path, len(archive), f"/model-cache/{model}/main"):
        cluster.deploy(ns, "asr", cluster.model_pod(model), replicas=1)

    (pod,) = wait_pods_running(cluster.cp, ns, "app=asr", 1, cluster.node)
    status = next(s for s in pod.status.init_container_statuses if s.name == "model-cache-download")
    assert status.restart_count >= 1, "the downloader was not the process killed"
    report = pod_report(cluster.cp, ns, pod.metadata.name, SERVER)
    assert model_files(report) == {name: sha256(data) for name, data in CONTENTS.items()}
    served = cluster.origin.served[path]
    assert served <= GOAL * len(archive), f"{served / len(archive):.3f}x the archive was served"
    return downloader_log(cluster.cp, ns, pod.metadata.name)


def test_a_plain_tar_streamed_into_memory_resumes_from_its_checkpoint(cluster: Cluster) -> None:
    archive = tar_archive(CONTENTS, mode="w")
    # The tmpfs holds the contents with under 1Mi to spare: no room to keep the tar.
    log = _kill_half_way(cluster, "node-tar-resume", "streamed", "/resume/model.tar", archive,
                         size="21Mi", strategy="memory")
    assert "resuming at byte" in log, log


def test_a_compressed_tar_kept_on_a_claim_resumes_its_fetch(cluster: Cluster) -> None:
    archive = tar_archive(CONTENTS)
    log = _kill_half_way(cluster, "node-targz-resume", "kept", "/resume/model.tar.gz", archive, size="21Mi")
    assert "as it streams in" not in log, log
