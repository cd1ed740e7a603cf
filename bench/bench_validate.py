"""Benchmark of /validate: over TLS with keep-alive from several concurrent
connections, with the cluster-facts cache warm and cold, beside /healthz on the
same server as the floor, plus the pure rules alone.

    .venv/bin/python bench/bench_validate.py [--connections 8] [--duration 10]

The webhook's kubernetes client talks to the fake API server of the tests
(tests/validation/fake_apiserver.py, HTTPS on 127.0.0.1, in this process).
- warm: the default TTL (30 s); every review after the first answers from the cache.
- cold: MODEL_CACHE_FACTS_TTL=0; every review GETs its PVC and Secret from the
  API server (concurrent reviews of the same object share one GET). The fake
  API server runs on the same 2 cores, so this is a pessimistic bound.
Load from wrk when installed (apt-get install wrk), else a Python client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import timeit
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_webhook import TYPICAL_POD, measure, running_server  # noqa: E402
from tests.helpers import pod_review  # noqa: E402
from tests.validate import pods  # noqa: E402
from tests.validate.conftest import POLICY_ML  # noqa: E402
from tests.validate.fake_apiserver import FakeApiServer  # noqa: E402

import yaml  # noqa: E402


def typical_review() -> dict[str, Any]:
    """A vLLM pod on a pvc model after mutation, in a namespace where every check passes."""
    request = pods.admission_request(pods.final_pod())
    request["uid"] = str(uuid.uuid4())
    return pods.review_body(request)


def seed(api: FakeApiServer) -> None:
    api.add_namespace("ml")
    api.add_pvc("ml", "llm-models", "100Gi")
    api.add_secret("ml", "hf-token", {"HF_TOKEN": "hf_bench"})


def pure_ms(policies: Path) -> dict[str, float]:
    from webhook.validate import rules as checks, review as validation
    from webhook.validate.facts import ClusterFacts, PvcInfo, SecretInfo
    from webhook.policy import PolicyStore

    store = PolicyStore(policies, interval=3600)
    request = typical_review()["request"]
    pod = request["object"]
    model = store.resolve("ml", "llama-3-8b")
    facts = ClusterFacts(pvc=PvcInfo("llm-models", model.size_bytes * 10, model.size_bytes * 10, ("ReadWriteMany",), "Bound"),
                         secret=SecretInfo("hf-token", frozenset({"HF_TOKEN"})))
    out = {}
    for name, fn in (
        ("rules (checks.describe + run_checks)", lambda: checks.run_checks(checks.describe(pod, model, "ml"), model, facts)),
        ("review() without cluster lookups", lambda: validation.review(request, store, None)),
    ):
        runs = [min(timeit.repeat(fn, number=500, repeat=5)) / 500 * 1000 for _ in range(3)]
        out[name] = statistics.median(runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-validate-"))
    policies = tmp / "policies"
    shutil.copytree(REPO / "policies", policies)  # llm.yaml serves /mutate's typical pod
    (policies / "ml.yaml").write_text(POLICY_ML)
    api = FakeApiServer(tmp / "apiserver")
    seed(api)
    kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
    body = json.dumps(typical_review()).encode()
    use_wrk = shutil.which("wrk") is not None
    results: dict[str, Any] = {"pure_ms": pure_ms(policies)}
    try:
        env = {"MODEL_CACHE_KUBECONFIG": str(kubeconfig)}
        with running_server(policies, args.workers, args.threads, env=env) as (port, cafile):
            results["/healthz"] = measure(port, cafile, "/healthz", None, args.connections, args.duration, use_wrk)
            # /mutate on the same server and load, for the comparison with its goals.
            mutate_body = json.dumps(pod_review(yaml.safe_load(TYPICAL_POD.read_text()))).encode()
            results["/mutate"] = measure(port, cafile, "/mutate", mutate_body, args.connections, args.duration, use_wrk)
            results["/validate warm"] = measure(port, cafile, "/validate", body, args.connections, args.duration, use_wrk)
        gets_before = api.count("/api/v1/")
        with running_server(policies, args.workers, args.threads, env={**env, "MODEL_CACHE_FACTS_TTL": "0"}) as (port, cafile):
            results["/validate cold"] = measure(port, cafile, "/validate", body, args.connections, args.duration, use_wrk)
        results["/validate cold"]["api_gets"] = float(api.count("/api/v1/") - gets_before)
    finally:
        api.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results["client"] = "wrk" if use_wrk else "python"
    results["setup"] = (f"{args.workers} gunicorn workers x {args.threads} threads, {args.connections} keep-alive "
                        f"connections, {args.duration}s, {os.cpu_count()} cores")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"# {results['setup']}, load from {results['client']}")
    print("| endpoint | p50 ms | p99 ms | requests/s | non-2xx |")
    print("|---|---|---|---|---|")
    for name in ("/healthz", "/mutate", "/validate warm", "/validate cold"):
        r = results[name]
        print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} | {r['non_2xx']:.0f} |")
    for name, ms in results["pure_ms"].items():
        print(f"| pure: {name} | {ms:.3f} | | | |")
    cold = results["/validate cold"]
    print(f"\ncold: {cold['api_gets']:.0f} GETs to the API server for {cold['rps'] * args.duration:.0f} reviews")


if __name__ == "__main__":
    main()
