"""A 3-replica hostpath Deployment on the three nodes of tests/node (node-a,
node-b, node-c, each with its own disk behind the hostPath, the node agent on
each), behind an origin throttled like a remote bucket: the time from the
Deployment's creation to all replicas Running, and what the origin served, as
a multiple of the model's size, for four states of the fleet:

  cold       nothing cached anywhere; no cache-aware affinity (weight 0)
  warm-1     the model on node-a only (a pod used it there before); affinity off
  affinity   the same state, with the webhook's cache-aware affinity (weight 100)
  prewarmed  the policy prewarms the model on every node; the agents fetched it first

    .venv/bin/python bench/bench_fleet.py [--size-mib 96] [--rate-mb 20] [--json]

Needs what tests/node needs (root, scripts/k8s-bins, scripts/node-bins,
scripts/node-images: scripts/test builds them all). Each state has a model of
its own, so one run's caches do not help another.
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

from bench.bench_node import wait_running  # noqa: E402
from tests.apiserver.controlplane import wait_for  # noqa: E402
from tests.node.cluster import Cluster, on_node, running_cluster, seeded, sha256  # noqa: E402
from tests.node.node import CACHE_PATH, why_not  # noqa: E402
from webhook.inventory import label_key  # noqa: E402

MiB = 1 << 20
REPLICAS = 3
STATES = ("cold", "warm-1", "affinity", "prewarmed")


def run(cluster: Cluster, state: str, size: int) -> dict[str, Any]:
    name = f"fleet-{state}"
    path = f"/{name}/weights.bin"
    data = seeded(name, size)
    cluster.origin.files[path] = data
    spec: dict[str, Any] = {"source": f"{cluster.origin.url}{path}", "sha256": sha256(data),
                            "size": f"{size // MiB + 64}Mi", "strategy": "hostpath"}
    if state == "prewarmed":
        spec["prewarm"] = {"nodeSelector": {"bench-fleet": "yes"}}
    weight = 100 if state in ("affinity", "prewarmed") else 0
    # A model name of its own: the cache directory is <model>/<revision> on
    # every node, whatever the namespace.
    model = f"llm-{state}"
    ns = cluster.namespace(f"bench-{name}", {model: spec},
                           hostPath={"path": CACHE_PATH, "agent": True, "cacheAffinityWeight": weight})
    pod = cluster.model_pod(model)
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = "256Mi"
    key = label_key(model, "main")
    if state in ("warm-1", "affinity"):
        cluster.run_pod(ns, "first", on_node(pod, "node-a"))
        wait_running(cluster, ns, 1, time.monotonic(), "app=first")
        cluster.cp.core.delete_namespaced_pod("first", ns, grace_period_seconds=0)
        wait_for(f"node-a's agent reporting {model}", lambda: key in cluster.node_labels("node-a"), timeout=120)
    if state == "prewarmed":
        wait_for(f"{model} prewarmed on every node",
                 lambda: all(key in cluster.node_labels(n.name) for n in cluster.nodes), timeout=1800, every=0.5)
    served = cluster.origin.served[path]
    start = time.monotonic()
    cluster.deploy(ns, "llm", pod, replicas=REPLICAS)
    running = wait_running(cluster, ns, REPLICAS, start)
    pods = cluster.cp.core.list_namespaced_pod(ns, label_selector="app=llm").items
    return {
        "state": state, "replicas": REPLICAS, "model_mib": size / MiB,
        "all_running_s": round(max(running.values()), 1),
        "running_s": sorted(round(t, 1) for t in running.values()),
        "nodes": sorted(p.spec.node_name for p in pods),
        "origin_served_x": round((cluster.origin.served[path] - served) / size, 3),
        "origin_before_x": round(served / size, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=96, help="the model's size (MiB)")
    parser.add_argument("--rate-mb", type=float, default=20.0, help="the origin's rate, MB/s per connection")
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        raise SystemExit(f"bench_fleet: {reason}")
    results = []
    with running_cluster(Path(mkdtemp(prefix="bench-fleet-")), nodes=3) as cluster:
        cluster.origin.throttle = 65536 / (args.rate_mb * 1e6)
        cluster.install_agent()
        for node in cluster.nodes:
            cluster.label_node(node.name, {"bench-fleet": "yes"})
        for state in args.states.split(","):
            results.append(run(cluster, state, args.size_mib * MiB))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(f"model {args.size_mib} MiB, origin {args.rate_mb:g} MB/s per connection, {REPLICAS} replicas, 3 nodes")
        print(f"{'state':<10} {'all Running':>12} {'each (s)':<18} {'origin':>7}  nodes")
        for r in results:
            print(f"{r['state']:<10} {r['all_running_s']:>11.1f}s {', '.join(map(str, r['running_s'])):<18} "
                  f"{r['origin_served_x']:>6.2f}x  {', '.join(r['nodes'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
