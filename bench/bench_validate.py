"""Benchmark of /validate: over TLS with keep-alive from several concurrent
connections, with the cluster-facts cache warm and cold, beside /healthz on the
same server as the floor, plus the pure rules alone.

    .venv/bin/python bench/bench_validate.py [--connections 8] [--duration 10]

The reviewed pod is tests/golden/vllm-gpu-pvc.in.yaml (a data file) as the
product's own mutation (webhook.mutate.mutate_pod) makes it under policies/.
The webhook's kubernetes client talks to bench/apiserver_stub.py (HTTPS on
127.0.0.1, in this process), which serves namespace llm, PVC llm-models and
Secret hf-token so that every check passes.
- warm: the default TTL (30 s); every review after the first answers from the cache.
- cold: MODEL_CACHE_FACTS_TTL=0; every review GETs its PVC and Secret from the
  API server (concurrent reviews of the same object share one GET). The fake
  API server runs on the same 2 cores, so this is a pessimistic bound.
Load from wrk when installed (apt-get install wrk), else a Python client.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.apiserver_stub import ApiServerStub  # noqa: E402
from bench.bench_webhook import (  # noqa: E402
    TYPICAL_POD, admission_review, arguments, measure, pure_times, report, running_server)

NAMESPACE = "llm"  # TYPICAL_POD's, whose policy is policies/llm.yaml


def typical_review(policies: Path) -> dict[str, Any]:
    """The vLLM pod of TYPICAL_POD (model llama-3-8b, strategy pvc) after mutation."""
    from webhook.mutate import mutate_pod
    from webhook.policy import PolicyStore

    pod = yaml.safe_load(TYPICAL_POD.read_text())
    mutated, _ = mutate_pod(pod, NAMESPACE, PolicyStore(policies, interval=3600))
    assert mutated is not None, f"{TYPICAL_POD} was not mutated under {policies}"
    return admission_review(mutated)


def cluster_objects() -> dict[str, dict[str, Any]]:
    """Namespace llm as a platform team sets it up for policies/llm.yaml: every check passes."""
    meta = {"uid": "0b5e1c3a-bench", "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    ns = f"/api/v1/namespaces/{NAMESPACE}"
    return {
        ns: {"kind": "Namespace", "apiVersion": "v1", "metadata": {**meta, "name": NAMESPACE}},
        f"{ns}/persistentvolumeclaims/llm-models": {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": {**meta, "name": "llm-models"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}}},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "100Gi"}}},
        f"{ns}/secrets/hf-token": {
            "kind": "Secret", "apiVersion": "v1", "metadata": {**meta, "name": "hf-token"}, "type": "Opaque",
            "data": {"HF_TOKEN": base64.b64encode(b"hf_bench").decode()}},
    }


def answer(port: int, cafile: Path, body: bytes) -> dict[str, Any]:
    """One /validate review: the bench measures what it thinks only if the
    review passes every check (no warning, no lookup that failed)."""
    request = urllib.request.Request(f"https://localhost:{port}/validate", data=body,
                                     headers={"Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(request, context=context, timeout=10) as r:
        response = json.load(r)["response"]
    if not response["allowed"] or response.get("warnings"):
        raise SystemExit(f"the benchmark's review is not the passing one it should be: {response}")
    return response


def pure_ms(policies: Path) -> dict[str, float]:
    from webhook.admission import validating as validation
    from webhook.validate import rules as checks
    from webhook.facts.use import describe
    from webhook.facts.cluster import ClusterFacts, PvcInfo, SecretInfo
    from webhook.policy import PolicyStore

    store = PolicyStore(policies, interval=3600)
    request = typical_review(policies)["request"]
    pod = request["object"]
    model = store.resolve(NAMESPACE, "llama-3-8b")
    facts = ClusterFacts(pvc=PvcInfo("llm-models", model.size_bytes * 10, model.size_bytes * 10, ("ReadWriteMany",), "Bound"),
                         secret=SecretInfo("hf-token", frozenset({"HF_TOKEN"})))
    return pure_times({
        "rules (usage.describe + run_checks)": lambda: checks.run_checks(describe(pod, model, NAMESPACE), model, facts),
        "review() without cluster lookups": lambda: validation.review(request, store, None),
    }, number=500)


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-validate-"))
    policies = tmp / "policies"
    shutil.copytree(REPO / "policies", policies)
    api = ApiServerStub(tmp, cluster_objects())
    kubeconfig = api.kubeconfig(tmp / "kubeconfig")
    body = json.dumps(typical_review(policies)).encode()
    use_wrk = shutil.which("wrk") is not None
    results: dict[str, Any] = {"pure_ms": pure_ms(policies)}
    try:
        env = {"MODEL_CACHE_KUBECONFIG": str(kubeconfig)}
        with running_server(policies, args.workers, args.threads, env=env, worker_class=args.worker_class) as (port, cafile):
            results["/healthz"] = measure(port, cafile, "/healthz", None, args.connections, args.duration, use_wrk)
            # /mutate on the same server and load, for the comparison with its goals.
            mutate_body = json.dumps(admission_review(yaml.safe_load(TYPICAL_POD.read_text()))).encode()
            results["/mutate"] = measure(port, cafile, "/mutate", mutate_body, args.connections, args.duration, use_wrk)
            answer(port, cafile, body)
            results["/validate warm"] = measure(port, cafile, "/validate", body, args.connections, args.duration, use_wrk)
        gets_before = api.gets
        with running_server(policies, args.workers, args.threads, env={**env, "MODEL_CACHE_FACTS_TTL": "0"},
                            worker_class=args.worker_class) as (port, cafile):
            answer(port, cafile, body)
            results["/validate cold"] = measure(port, cafile, "/validate", body, args.connections, args.duration, use_wrk)
        results["/validate cold"]["api_gets"] = float(api.gets - gets_before)
    finally:
        api.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, args, ("/healthz", "/mutate", "/validate warm", "/validate cold"), use_wrk)
    if not args.json:
        cold = results["/validate cold"]
        print(f"\ncold: {cold['api_gets']:.0f} GETs to the API server for {cold['rps'] * args.duration:.0f} reviews")


if __name__ == "__main__":
    main()
