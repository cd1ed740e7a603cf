"""What admission by model-cache costs a pod on the real API server, beside a
Go peer (controller-runtime) that injects the same patch, in the same run.

    .venv/bin/python bench/bench_apiserver.py [--rounds 300] [--burst 500] [--controller-qps 1000] [--json]

The control plane of tests/apiserver (etcd, kube-apiserver, kube-controller-
manager with its client rate limits raised), model-cache installed from
manifests/ as tests/apiserver does, and the peer (bench/peers/pvc-webhook,
built once by bench/peers/build) behind a MutatingWebhookConfiguration of its
own, on the same certificate. Then:

- serial: pods created one after another over one kept-alive connection,
  the vLLM pod of tests/golden with and without its trigger annotation, for
  model-cache (namespace llm) and the peer (namespace bench-peer) in turn;
  the added latency per pod is annotated minus unannotated, p50 and p99. The
  annotated pod twice: bare, and "owned" as its ReplicaSet would create it
  (the golden pod's ownerReference: a pod of a Deployment, which skips
  /validate; the garbage collector deletes it, its ReplicaSet being absent,
  on both sides alike). A last series, the pod as model-cache leaves it
  created where no webhook is called, splits that into what the bigger pod
  costs and what the calls cost;
- burst: a Deployment of that pod scaled from 0 to BURST replicas, for each
  side: how long until every pod exists, how many creates were refused (the
  controller manager's client limits set by --controller-qps);
- for each phase, the API server's own histogram of each webhook's calls
  (apiserver_admission_webhook_admission_duration_seconds, from /metrics) and
  the calls per pod.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kubernetes import client as k8s  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.bench_webhook import admission_review, run_wrk  # noqa: E402
from bench.ports import free_port  # noqa: E402
from tests.apiserver.controlplane import (ControlPlane, Proc, http_get, running_control_plane, spawn, wait_for,
                                          why_not)  # noqa: E402
from tests.apiserver.served import Webhook, install  # noqa: E402

VLLM_POD = REPO / "tests" / "golden" / "vllm-gpu-pvc.in.yaml"
EXAMPLE_POLICIES = REPO / "policies"  # the golden files' policies: llm.yaml names the vLLM pod's model
TRIGGER = "model.cache/name"
PEER_TRIGGER = "peer.bench/name"  # the peer's own trigger, so that model-cache never sees its pods
MC_NS, PEER_NS = "llm", "bench-peer"
PEER_HOOK = "pods.mutate.peer.bench"
OUR_HOOKS = ("pods.mutate.model.cache", "pods.validate.model.cache")
ADMISSION_HISTOGRAM = "apiserver_admission_webhook_admission_duration_seconds"
# Raised from 20/30 so that the ReplicaSet controller, not its client, sets the pace of a burst.
CONTROLLER_QPS = 1000


# --- the pods and what the peer injects -------------------------------------------------

def vllm_pod(annotated: bool, trigger: str = TRIGGER, owned: bool = False) -> dict[str, Any]:
    """The golden vLLM pod, with or without TRIGGER; standalone unless OWNED
    (its ReplicaSet does not exist: the garbage collector deletes it soon after)."""
    pod = yaml.safe_load(VLLM_POD.read_text())
    if not owned:
        pod["metadata"].pop("ownerReferences", None)
    pod["metadata"].pop("namespace", None)
    model = pod["metadata"]["annotations"].pop(TRIGGER)
    if annotated:
        pod["metadata"]["annotations"][trigger] = model
    return pod


def mutated_golden() -> tuple[dict[str, Any], dict[str, Any]]:
    """The vLLM pod of tests/golden, and that pod as model-cache's pure core
    mutates it under policies/."""
    from webhook.mutate import mutate_pod
    from webhook.policy import PolicyStore

    before = yaml.safe_load(VLLM_POD.read_text())
    after, _ = mutate_pod(copy.deepcopy(before), before["metadata"]["namespace"], PolicyStore(EXAMPLE_POLICIES))
    assert after is not None, "model-cache does not inject the vLLM pod under policies/"
    return before, after


def injected_pod() -> dict[str, Any]:
    """The vLLM pod as model-cache leaves it, without either trigger: created
    where no webhook is called, it costs the API server what the bigger pod
    costs, so that the rest of an annotated pod's time is the calls."""
    _, after = mutated_golden()
    after["metadata"].pop("ownerReferences", None)
    after["metadata"].pop("namespace", None)
    after["metadata"]["annotations"].pop(TRIGGER)
    return after


def peer_injection() -> dict[str, Any]:
    """What model-cache's pure core adds to the vLLM pod (pvc strategy), in the
    shape bench/peers/pvc-webhook applies: the peer sends the same patch."""
    before, after = mutated_golden()
    spec_in, spec_out = before["spec"], after["spec"]
    old_names = {v["name"] for v in spec_in.get("volumes", [])}
    old_inits = {c["name"] for c in spec_in.get("initContainers", [])}
    c_in, c_out = spec_in["containers"][0], spec_out["containers"][0]
    return {
        "trigger": PEER_TRIGGER,
        "annotations": {k: v for k, v in after["metadata"]["annotations"].items()
                        if k not in before["metadata"]["annotations"]},
        "volumes": [v for v in spec_out.get("volumes", []) if v["name"] not in old_names],
        "initContainers": [c for c in spec_out.get("initContainers", []) if c["name"] not in old_inits],
        "volumeMounts": c_out.get("volumeMounts", [])[len(c_in.get("volumeMounts", [])):],
        "env": c_out.get("env", [])[len(c_in.get("env", [])):],
        "securityContext": spec_out.get("securityContext"),
    }


def injected_parts(pod: dict[str, Any]) -> dict[str, Any]:
    """The parts of a stored pod that an injection decides, to compare both sides."""
    spec = pod["spec"]
    # Not the ServiceAccount plugin's token volume: its name ends in a random suffix.
    return {"injected": pod["metadata"]["annotations"].get("model.cache/injected"),
            "volumes": sorted(v["name"] for v in spec.get("volumes", []) if not v["name"].startswith("kube-api-access-")),
            "initContainers": [c["name"] for c in spec.get("initContainers", [])],
            "mounts": [m["mountPath"] for m in spec["containers"][0].get("volumeMounts", [])],
            "env": [e["name"] for e in spec["containers"][0].get("env", [])],
            "fsGroup": (spec.get("securityContext") or {}).get("fsGroup")}


# --- the peer ---------------------------------------------------------------------------

@dataclass
class Peer:
    proc: Proc
    port: int


def start_peer(cp: ControlPlane, hook: Webhook, root: Path, http2: bool) -> Peer:
    binary = subprocess.run([str(REPO / "bench" / "peers" / "build")], check=True, capture_output=True,
                            text=True).stdout.strip()
    certs = root / "peer-certs"
    certs.mkdir()
    for name in ("tls.crt", "tls.key", "ca.crt"):  # model-cache's own certificate: TLS the same way
        shutil.copy(hook.root / "tls" / name, certs / name)
    injection = root / "peer-injection.json"
    injection.write_text(json.dumps(peer_injection()))
    port = free_port()
    proc = spawn("pvc-webhook peer", [binary, "--port", str(port), "--cert-dir", str(certs),
                                      "--injection", str(injection), f"--http2={str(http2).lower()}"],
                 root / "peer.log")
    cp.namespace(PEER_NS)
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "bench-peer"},
        "webhooks": [{
            "name": PEER_HOOK, "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate",
                             "caBundle": base64.b64encode((certs / "ca.crt").read_bytes()).decode()},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["pods"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PEER_NS}},
            # As model-cache's: only pods that ask, Fail, 5 s, reinvoked if another plugin changes the pod.
            "matchConditions": [{"name": "asks-for-a-model",
                                 "expression": f"has(object.metadata.annotations) && '{PEER_TRIGGER}' in object.metadata.annotations"}],
            "failurePolicy": "Fail", "sideEffects": "None", "timeoutSeconds": 5, "reinvocationPolicy": "IfNeeded",
        }],
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(config))
    wait_for("the API server admitting through the peer", lambda: _dry_run_injected(cp, PEER_NS, PEER_TRIGGER),
             procs=(proc,), timeout=60)
    return Peer(proc, port)


def _dry_run_injected(cp: ControlPlane, namespace: str, trigger: str) -> bool:
    resp = cp.core.create_namespaced_pod(namespace, vllm_pod(True, trigger), dry_run="All", _preload_content=False)
    return "model.cache/injected" in json.loads(resp.data)["metadata"]["annotations"]


def serve_example_policy(cp: ControlPlane, hook: Webhook) -> None:
    """The vLLM pod's namespace and its policy (policies/llm.yaml) in the
    webhook's policy directory, which it reloads; waits until it is served."""
    cp.namespace(MC_NS)
    for name in ("llm.yaml", "_default.yaml"):
        target = hook.root / "policies" / name
        if not target.exists():
            shutil.copy(EXAMPLE_POLICIES / name, target)
    wait_for("model-cache serving the llm policy", lambda: _dry_run_injected(cp, MC_NS, TRIGGER),
             procs=(hook.proc,) if hook.proc else (), timeout=60)


# --- the API server's metrics -----------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(cp: ControlPlane) -> Samples:
    token = yaml.safe_load(cp.kubeconfig.read_text())["users"][0]["user"]["token"]
    text = http_get(f"{cp.url}/metrics", ssl.create_default_context(cafile=str(cp.ca)), token).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("apiserver_admission_webhook"):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def webhook_histogram(before: Samples, after: Samples, hook: str) -> dict[str, float]:
    """The calls of HOOK between two scrapes: count, fraction under each
    bucket bound, and p50/p99 interpolated within the (coarse) buckets."""
    buckets: dict[float, float] = {}
    count = 0.0
    for (name, labels), value in after.items():
        labels_d = dict(labels)
        if labels_d.get("name") != hook:
            continue
        delta = value - before.get((name, labels), 0.0)
        if name == ADMISSION_HISTOGRAM + "_bucket":
            le = float(labels_d["le"])
            buckets[le] = buckets.get(le, 0.0) + delta
        elif name == ADMISSION_HISTOGRAM + "_count":
            count += delta
    out: dict[str, float] = {"calls": count}
    if not count:
        return out
    bounds = sorted(buckets)
    for le in bounds:
        if le <= 0.1:
            out[f"le_{le * 1000:g}ms"] = buckets[le] / count
    for q in (0.5, 0.99):
        out[f"p{q * 100:g}_ms"] = _quantile(q, bounds, buckets, count) * 1000
    return out


def _quantile(q: float, bounds: list[float], buckets: dict[float, float], count: float) -> float:
    # As Prometheus's histogram_quantile: linear within the bucket that holds the rank.
    rank, lower, below = q * count, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-9)
        lower, below = le, buckets[le]
    return lower


def rejected(before: Samples, after: Samples) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == "apiserver_admission_webhook_rejection_count_total")


# --- the phases -------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serial(cp: ControlPlane, rounds: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per create, for each side and kind, interleaved so that
    drift in the machine's load falls on every series alike."""
    core = k8s.CoreV1Api(cp.api_client())
    series: dict[str, tuple[str, dict[str, Any]]] = {
        "model-cache annotated": (MC_NS, vllm_pod(True)),
        "model-cache owned": (MC_NS, vllm_pod(True, owned=True)),
        "model-cache plain": (MC_NS, vllm_pod(False)),
        "peer annotated": (PEER_NS, vllm_pod(True, PEER_TRIGGER)),
        "peer owned": (PEER_NS, vllm_pod(True, PEER_TRIGGER, owned=True)),
        "peer plain": (PEER_NS, vllm_pod(False)),
        "injected, no webhook": (PEER_NS, injected_pod()),
    }
    names = list(series)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            namespace, pod = series[name]
            started = time.perf_counter()
            core.create_namespaced_pod(namespace, pod, _preload_content=False).read()
            if i >= warmup:
                times[name].append((time.perf_counter() - started) * 1000)
    return {"ms": times, "pods_per_series": warmup + rounds}


def added(times: dict[str, list[float]], side: str, kind: str = "annotated") -> dict[str, float]:
    """KIND (annotated: bare; owned: a ReplicaSet's) minus plain, and of that
    what the calls cost: KIND minus the already-injected pod that no webhook sees."""
    ann, plain, bigger = times[f"{side} {kind}"], times[f"{side} plain"], times["injected, no webhook"]
    return {"annotated_p50_ms": percentile(ann, 0.5), "annotated_p99_ms": percentile(ann, 0.99),
            "plain_p50_ms": percentile(plain, 0.5), "plain_p99_ms": percentile(plain, 0.99),
            "no_webhook_p50_ms": percentile(bigger, 0.5), "no_webhook_p99_ms": percentile(bigger, 0.99),
            "added_p50_ms": percentile(ann, 0.5) - percentile(plain, 0.5),
            "added_p99_ms": percentile(ann, 0.99) - percentile(plain, 0.99),
            "calls_p50_ms": percentile(ann, 0.5) - percentile(bigger, 0.5)}


def burst(cp: ControlPlane, namespace: str, trigger: str, replicas: int, timeout: float) -> dict[str, float]:
    """A Deployment of the annotated vLLM pod scaled from 0 to REPLICAS: the
    seconds until every pod exists and the creates the API server refused."""
    from tests.helpers import deployment, pod_template

    name = f"burst-{namespace}"
    template = pod_template(vllm_pod(True, trigger), {"app": name})
    apps = k8s.AppsV1Api(cp.api_client())
    apps.create_namespaced_deployment(namespace, deployment(template, name, replicas=0))
    core = k8s.CoreV1Api(cp.api_client())
    started = time.monotonic()
    apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})

    def pods() -> int:
        listed = core.list_namespaced_pod(namespace, label_selector=f"app={name}", _preload_content=False)
        return len(json.loads(listed.data)["items"])

    created = wait_for(f"{replicas} pods of {name}", lambda: pods() >= replicas, timeout=timeout, every=0.1)
    seconds = time.monotonic() - started
    events = json.loads(core.list_namespaced_event(namespace, _preload_content=False).data)["items"]
    failed = sum(e.get("count") or 1 for e in events if e.get("reason") == "FailedCreate")
    injected = json.loads(core.list_namespaced_pod(namespace, label_selector=f"app={name}", limit=1,
                                                   _preload_content=False).data)["items"][0]
    assert created and injected["metadata"]["annotations"].get("model.cache/injected"), "burst pods not injected"
    return {"pods": float(pods()), "seconds": seconds, "pods_per_s": replicas / seconds,
            "failed_create_events": float(failed)}


def direct(hook: Webhook, peer: Peer, seconds: int, stored: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each webhook alone, one kept-alive connection, one request at a time
    (wrk -c1): what a call costs at the server, without the API server.
    /validate gets STORED, a pod as the API server stored it after our
    mutation: what it sends to /validate."""
    if shutil.which("wrk") is None:
        return {}
    ours = admission_review({**vllm_pod(True), "metadata": {**vllm_pod(True)["metadata"], "namespace": MC_NS}})
    # A ReplicaSet's pod: /mutate also runs the validating checks on it (issue 30).
    owned = admission_review({**vllm_pod(True, owned=True),
                              "metadata": {**vllm_pod(True, owned=True)["metadata"], "namespace": MC_NS}})
    theirs = admission_review({**vllm_pod(True, PEER_TRIGGER),
                               "metadata": {**vllm_pod(True, PEER_TRIGGER)["metadata"], "namespace": PEER_NS}})
    out = {}
    for name, port, path, review in (("model-cache /mutate", hook.port, "/mutate", ours),
                                     ("model-cache /mutate, a ReplicaSet's pod", hook.port, "/mutate", owned),
                                     ("model-cache /validate", hook.port, "/validate", admission_review(stored)),
                                     ("peer /mutate", peer.port, "/mutate", theirs)):
        payload = json.dumps(review).encode()
        run_wrk(f"https://127.0.0.1:{port}{path}", payload, 1, 1)
        out[name] = run_wrk(f"https://127.0.0.1:{port}{path}", payload, 1, seconds)
    return out


def established(port: int) -> set[str]:
    """The client ends of the connections established to PORT on loopback."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the run ----------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict[str, Any]:
    reason = why_not()
    if reason:
        raise SystemExit(f"no control plane here: {reason}")
    results: dict[str, Any] = {"load_before": load_average(), "cores": os.cpu_count(),
                               "controller_qps": args.controller_qps}
    root = Path(tempfile.mkdtemp(prefix="mc-bench-apiserver-"))
    try:
        qps = str(args.controller_qps)
        with running_control_plane(root / "cp", ("--kube-api-qps", qps, "--kube-api-burst", qps)) as cp:
            (root / "webhook").mkdir()
            hook = install(cp, root / "webhook")
            peer = None
            try:
                serve_example_policy(cp, hook)
                peer = start_peer(cp, hook, root, args.peer_http2)
                conns_before = established(hook.port)
                before = scrape(cp)
                results["serial"] = serial(cp, args.rounds, args.warmup)
                after = scrape(cp)
                conns_after = established(hook.port)
                results["serial"]["connections"] = {"before": len(conns_before), "after": len(conns_after),
                                                    "kept": len(conns_before & conns_after)}
                times = results["serial"]["ms"]
                results["serial"]["model-cache"] = added(times, "model-cache")
                results["serial"]["peer"] = added(times, "peer")
                results["serial"]["model-cache owned"] = added(times, "model-cache", "owned")
                results["serial"]["peer owned"] = added(times, "peer", "owned")
                results["serial"]["webhooks"] = {h: webhook_histogram(before, after, h) for h in (*OUR_HOOKS, PEER_HOOK)}
                results["serial"]["rejected"] = rejected(before, after)
                results["serial"]["load_after"] = load_average()
                ours = _stored(cp, MC_NS, TRIGGER)
                theirs = _stored(cp, PEER_NS, PEER_TRIGGER)
                results["same_injection"] = injected_parts(ours) == injected_parts(theirs)
                if not results["same_injection"]:
                    results["injections"] = {"model-cache": injected_parts(ours), "peer": injected_parts(theirs)}
                if args.direct_seconds:
                    results["direct"] = direct(hook, peer, args.direct_seconds, ours)
                if args.burst:
                    for side, namespace, trigger, hooks in (("model-cache", MC_NS, TRIGGER, OUR_HOOKS),
                                                            ("peer", PEER_NS, PEER_TRIGGER, (PEER_HOOK,))):
                        before = scrape(cp)
                        out = burst(cp, namespace, trigger, args.burst, args.burst_timeout)
                        after = scrape(cp)
                        out["webhooks"] = {h: webhook_histogram(before, after, h) for h in hooks}
                        out["rejected"] = rejected(before, after)
                        out["connections_after"] = len(established(hook.port if side == "model-cache" else peer.port))
                        out["load_after"] = load_average()
                        results[f"burst {side}"] = out
            finally:
                if peer is not None:
                    peer.proc.stop()
                hook.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def _stored(cp: ControlPlane, namespace: str, trigger: str) -> dict[str, Any]:
    resp = cp.core.create_namespaced_pod(namespace, vllm_pod(True, trigger), _preload_content=False)
    return json.loads(resp.data)


def report(results: dict[str, Any]) -> None:
    s = results["serial"]
    print(f"# {results['cores']} cores, load {results['load_before']} before, {s['load_after']} after the serial phase")
    print(f"# the same injection on both sides: {results['same_injection']} {results.get('injections', '')}")
    for title, mc, peer in (("bare pods", s["model-cache"], s["peer"]),
                            ("a ReplicaSet's pods (owned)", s["model-cache owned"], s["peer owned"])):
        print(f"\n| serial creates, {title}, ms | model-cache | peer | model-cache / peer |")
        print("|---|---|---|---|")
        for key, label in (("plain_p50_ms", "unannotated p50"), ("plain_p99_ms", "unannotated p99"),
                           ("no_webhook_p50_ms", "injected already, no webhook, p50"),
                           ("no_webhook_p99_ms", "injected already, no webhook, p99"),
                           ("annotated_p50_ms", "annotated p50"), ("annotated_p99_ms", "annotated p99"),
                           ("added_p50_ms", "**added per pod, p50**"), ("added_p99_ms", "**added per pod, p99**"),
                           ("calls_p50_ms", "of which the webhook calls, p50")):
            ratio = mc[key] / peer[key] if key.startswith(("added", "calls")) and peer[key] > 0 else None
            print(f"| {label} | {mc[key]:.2f} | {peer[key]:.2f} | {'' if ratio is None else f'{ratio:.2f}'} |")
    pods = s["pods_per_series"]
    # Each side has two annotated series (bare and owned); only bare pods reach /validate.
    sent = {"pods.mutate.model.cache": 2 * pods, "pods.validate.model.cache": pods, PEER_HOOK: 2 * pods}
    print(f"\nAPI server connections to model-cache: {s['connections']}; refused: {s['rejected']:.0f}")
    print("| webhook (API server histogram) | calls | per pod it is sent (validate: bare pods only) | <= 5 ms | <= 25 ms | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for hook, h in s["webhooks"].items():
        if h["calls"]:
            print(f"| {hook} | {h['calls']:.0f} | {h['calls'] / sent[hook]:.2f} | {h.get('le_5ms', 0):.1%} | "
                  f"{h.get('le_25ms', 0):.1%} | {h['p50_ms']:.1f} | {h['p99_ms']:.1f} |")
    if results.get("direct"):
        print("\n| each webhook alone, wrk -c1 | p50 ms | p99 ms | requests/s |\n|---|---|---|---|")
        for name, r in results["direct"].items():
            print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} |")
    for side in ("model-cache", "peer"):
        b = results.get(f"burst {side}")
        if not b:
            continue
        print(f"\nburst, {side} (controller manager at {results['controller_qps']} qps): {b['pods']:.0f} pods in {b['seconds']:.1f} s ({b['pods_per_s']:.0f}/s), "
              f"FailedCreate events {b['failed_create_events']:.0f}, refused {b['rejected']:.0f}, "
              f"connections open after {b['connections_after']}, load after {b['load_after']}")
        for hook, h in b["webhooks"].items():
            if h["calls"]:
                print(f"  {hook}: {h['calls']:.0f} calls ({h['calls'] / b['pods']:.2f} per pod), <= 5 ms "
                      f"{h.get('le_5ms', 0):.1%}, <= 25 ms {h.get('le_25ms', 0):.1%}, p50 {h['p50_ms']:.1f} ms, "
                      f"p99 {h['p99_ms']:.1f} ms")
            else:
                print(f"  {hook}: no calls")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300, help="pods of each kind and side in the serial phase")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--burst", type=int, default=500, help="replicas of the burst (0: no burst)")
    ap.add_argument("--burst-timeout", type=float, default=300.0)
    ap.add_argument("--controller-qps", type=int, default=CONTROLLER_QPS,
                    help="the controller manager's --kube-api-qps and --kube-api-burst (its default: 20 and 30)")
    ap.add_argument("--direct-seconds", type=int, default=5, help="wrk -c1 on each webhook alone (0: skip)")
    ap.add_argument("--peer-http2", action="store_true", help="let the peer offer HTTP/2 (controller-runtime's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        report(results)


if __name__ == "__main__":
    main()
