"""The agent's metrics as Prometheus scrapes them (docs/agent.md lists them):
`model-cache agent` run as a process against the fake API server, its cache a
real directory over its quota, its /metrics read over HTTP. The API server
then fails its Node, and the pass errors are counted, not fatal."""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.apiserver.controlplane import Proc, spawn, wait_for
from tests.fakes.apiserver import FakeApiServer
from tests.helpers import MODEL_CACHE, complete_model

NODE = "gpu-1"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Proc, FakeApiServer, Path]]:
    with FakeApiServer(tmp_path / "apiserver") as fake:
        fake.put("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {}}})
        root = tmp_path / "cache"
        complete_model(root, "old", 600, used_ago=7200)
        complete_model(root, "recent", 500, used_ago=3600)
        policies = tmp_path / "policies"
        policies.mkdir()
        env = {"MODEL_CACHE_KUBECONFIG": str(fake.write_kubeconfig(tmp_path / "kubeconfig"))}
        running = spawn("agent", [MODEL_CACHE, "agent", "--node", NODE, "--root", str(root), "--policies",
                                  str(policies), "--quota", "1000", "--min-age", "0", "--interval", "0.2",
                                  "--metrics-host", "127.0.0.1", "--metrics-port", "0", "--uid", str(os.getuid())],
                        tmp_path / "agent.log", env)
        try:
            yield running, fake, root
        finally:
            running.stop()


def metrics_url(agent: Proc) -> str:
    """The agent's /metrics, on the free port it logs."""
    def port() -> str | None:
        found = re.search(r"metrics on 127\.0\.0\.1:(\d+)", agent.log.read_text(errors="replace"))
        return found.group(1) if found else None
    return f"http://127.0.0.1:{wait_for('the agent to log its metrics port', port, timeout=30, procs=(agent,))}/metrics"


def test_metrics_count_evictions_and_what_the_node_holds_then_failed_passes(agent) -> None:  # type: ignore[no-untyped-def]
    running, fake, root = agent
    url = metrics_url(running)
    node = (("node", NODE),)

    def evicted() -> dict | None:
        seen = scrape(url)
        return seen if seen.get(("model_cache_agent_evictions_total", node)) == 1 else None
    seen = wait_for("the agent to evict the least recently used model", evicted, timeout=30, procs=(running,))
    assert not (root / "old" / "main").exists() and (root / "recent" / "main").is_dir()
    assert seen[("model_cache_agent_evicted_bytes_total", node)] == 600
    assert seen[("model_cache_agent_models", node)] == 1
    assert seen[("model_cache_agent_bytes", node)] == 500
    assert seen[("model_cache_agent_prewarmed_models", node)] == 0
    assert seen.get(("model_cache_agent_sync_errors_total", node), 0) == 0

    fake.fail(f"^/api/v1/nodes/{NODE}$", 500)
    wait_for("the failed passes to be counted",
             lambda: scrape(url).get(("model_cache_agent_sync_errors_total", node), 0) >= 2, timeout=30,
             procs=(running,))
    assert running.popen.poll() is None, "the agent exited on the API server's 500\n" + running.tail()
