"""From a Deployment's creation to each replica Running, on the real node of
tests/node: the first replica downloads the model, the others find it (pvc)
or each fetch their own copy (memory, the per-pod baseline), behind an origin
throttled like a remote bucket. Reports each replica's time to Running and
what the origin served, as a multiple of the model's size.

    .venv/bin/python bench/bench_node.py [--size-mib 300] [--rate-mb 100] [--replicas 3] [--json]

Needs what tests/node needs (root, scripts/k8s-bins, scripts/node-bins,
scripts/node-images: scripts/test builds them all).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.cluster import Cluster, running_cluster, seeded, sha256  # noqa: E402
from tests.node.node import downloader_log, why_not  # noqa: E402

MiB = 1 << 20
SCALE_UP = 2  # replicas added once the first ones run


def run(cluster: Cluster, strategy: str, size: int, replicas: int) -> dict[str, Any]:
    path = f"/bench-{strategy}/weights.bin"
    data = seeded(f"bench-{strategy}", size)
    cluster.origin.files[path] = data
    ns = f"bench-{strategy}"
    limit_mib = size // MiB + 64
    cluster.namespace(ns, {"llm": {"source": f"{cluster.origin.url}{path}", "sha256": sha256(data),
                                   "size": f"{limit_mib}Mi", "strategy": strategy}})
    if strategy == "pvc":
        cluster.local_pvc(ns, size=f"{2 * limit_mib}Mi")
    pod = cluster.model_pod("llm")
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = "256Mi"
    start = time.monotonic()
    cluster.deploy(ns, "llm", pod, replicas=replicas)
    running = wait_running(cluster, ns, replicas, start)
    fetched = {name: "nothing to download" not in downloader_log(cluster.cp, ns, name) for name in running}
    times = sorted(running.values())
    # Later replicas (a scale-up once the model is there): the fast path, or another download.
    served = cluster.origin.served[path]
    start = time.monotonic()
    cluster.apps.patch_namespaced_deployment_scale("llm", ns, {"spec": {"replicas": replicas + SCALE_UP}})
    later = wait_running(cluster, ns, replicas + SCALE_UP, start, running=dict.fromkeys(running, 0.0))
    later_times = sorted(t for name, t in later.items() if name not in running)
    return {
        "strategy": strategy, "replicas": replicas, "model_mib": size / MiB,
        "first_running_s": round(times[0], 1), "last_running_s": round(times[-1], 1),
        "running_s": [round(t, 1) for t in times],
        "replicas_that_fetched": sum(fetched.values()),
        "origin_served_x": round(served / size, 3),
        "scaled_up_running_s": [round(t, 1) for t in later_times],
        "scale_up_origin_served_x": round((cluster.origin.served[path] - served) / size, 3),
    }


def wait_running(cluster: Cluster, ns: str, count: int, start: float, selector: str = "app=llm",
                 running: dict[str, float] | None = None) -> dict[str, float]:
    """Pod name -> seconds from START to Running and Ready, for COUNT pods of
    SELECTOR in NS; RUNNING holds the pods already counted (their times kept)."""
    running = dict(running or {})
    deadline = start + 1800
    while len(running) < count and time.monotonic() < deadline:
        for p in cluster.cp.core.list_namespaced_pod(ns, label_selector=selector).items:
            if p.metadata.name not in running and p.status.phase == "Running" and all(
                    s.ready for s in p.status.container_statuses or []):
                running[p.metadata.name] = time.monotonic() - start
        time.sleep(0.2)
    if len(running) < count:
        raise SystemExit(f"{ns}: only {len(running)} of {count} replicas Running after 30 min")
    return running


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=300, help="the model's size (MiB)")
    parser.add_argument("--rate-mb", type=float, default=100.0, help="the origin's rate, MB/s per connection")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--strategies", default="pvc,memory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        raise SystemExit(f"bench_node: {reason}")
    results = []
    with running_cluster(Path(mkdtemp(prefix="bench-node-"))) as cluster:
        # The origin sleeps this long per 64 KiB it sends, on each connection.
        cluster.origin.throttle = 65536 / (args.rate_mb * 1e6)
        for strategy in args.strategies.split(","):
            results.append(run(cluster, strategy, args.size_mib * MiB, args.replicas))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(f"model {args.size_mib} MiB, origin {args.rate_mb:g} MB/s per connection, {args.replicas} replicas")
        print(f"{'strategy':<9} {'first Running':>14} {'last Running':>13} {'each (s)':<20} {'fetched':>8} {'origin':>7}"
              f"   {'+' + str(SCALE_UP) + ' later (s)':<16} {'origin':>7}")
        for r in results:
            print(f"{r['strategy']:<9} {r['first_running_s']:>13.1f}s {r['last_running_s']:>12.1f}s "
                  f"{', '.join(map(str, r['running_s'])):<20} {r['replicas_that_fetched']:>8} {r['origin_served_x']:>6.2f}x"
                  f"   {', '.join(map(str, r['scaled_up_running_s'])):<16} {r['scale_up_origin_served_x']:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
