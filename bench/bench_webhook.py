"""Benchmark of the webhook: /mutate over TLS with keep-alive from several
concurrent connections, beside /healthz on the same server as the floor, and
the pure mutation alone.

    .venv/bin/python bench/bench_webhook.py [--connections 8] [--duration 10]

The load comes from wrk (apt-get install wrk), which keeps each connection
alive as the API server does; without wrk a Python client is used (slower: it
takes CPU from the server on a 2-core machine, so its numbers are a floor).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ports import free_port  # noqa: E402

MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))
# A data file (read, not imported): the vLLM pod of the golden tests, as the API server sends it.
TYPICAL_POD = REPO / "tests" / "golden" / "vllm-gpu-pvc.in.yaml"
SERVICE_NAME = "model-cache.model-cache.svc"  # what the API server verifies the certificate for


def admission_review(obj: dict[str, Any], kind: str = "Pod") -> dict[str, Any]:
    """An AdmissionReview for the CREATE of OBJ, as the API server sends it."""
    group, _, version = obj["apiVersion"].rpartition("/")
    gvk = {"group": group, "version": version, "kind": kind}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": gvk, "requestKind": gvk,
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "namespace": obj["metadata"]["namespace"], "operation": "CREATE", "dryRun": False,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": obj, "oldObject": None}}


@contextmanager
def running_server(policies: Path, workers: int, threads: int, env: dict[str, str] | None = None,
                   worker_class: str = "gevent") -> Iterator[tuple[int, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-"))
    certs = tmp / "certs"
    subprocess.run([MODEL_CACHE, "certs", "generate", "--out", str(certs)], check=True, capture_output=True)
    port = free_port()
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen(
        [MODEL_CACHE, "serve", "--policies", str(policies), "--cert", str(certs / "tls.crt"), "--key", str(certs / "tls.key"),
         "--port", str(port), "--host", "127.0.0.1", "--workers", str(workers), "--worker-class", worker_class,
         "--threads", str(threads), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"https://localhost:{port}/readyz", context=ctx, timeout=2):
                break
        except OSError:
            time.sleep(0.1)
    try:
        yield port, certs / "ca.crt"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, body: bytes | None, connections: int, duration: int, threads: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "req.lua"
        if body is not None:
            (Path(tmp) / "body.json").write_bytes(body)
            script.write_text(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'local f = io.open("{tmp}/body.json", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
            )
        else:
            script.write_text("")
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]), "rps": rps, "non_2xx": float(errors.group(1)) if errors else 0.0}


def run_python_client(port: int, cafile: Path, path: str, body: bytes | None, connections: int, duration: int) -> dict[str, float]:
    """Fallback load: one process per connection, each a kept-alive TLS connection."""
    import multiprocessing as mp

    def worker(q: Any) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        # http.client writes a POST's headers and body separately: without this,
        # Nagle holds the body until the server's delayed ACK, 40 ms a request.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = ssl.create_default_context(cafile=str(cafile)).wrap_socket(raw, server_hostname=SERVICE_NAME)
        lat: list[float] = []
        failed = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            t = time.perf_counter()
            conn.request("POST" if body else "GET", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            lat.append((time.perf_counter() - t) * 1000)
            failed += not 200 <= response.status < 300
        q.put((lat, failed))

    q: Any = mp.Queue()
    procs = [mp.Process(target=worker, args=(q,)) for _ in range(connections)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lats = sorted(x for lat, _ in results for x in lat)
    return {"p50_ms": lats[len(lats) // 2], "p99_ms": lats[int(len(lats) * 0.99)], "rps": len(lats) / duration,
            "non_2xx": float(sum(failed for _, failed in results))}


def measure(port: int, cafile: Path, path: str, body: bytes | None, connections: int, duration: int,
            use_wrk: bool) -> dict[str, float]:
    """One endpoint under load, after a 2 s warm-up (worker imports, caches, TLS set-up)."""
    if use_wrk:
        run_wrk(f"https://127.0.0.1:{port}{path}", body, connections, 2)
        return run_wrk(f"https://127.0.0.1:{port}{path}", body, connections, duration)
    return run_python_client(port, cafile, path, body, connections, duration)


def pure_mutation_ms(policies: Path) -> dict[str, float]:
    from webhook import admission
    from webhook.mutate import mutate
    from webhook.mutate.annotations import parse
    from webhook.policy import PolicyStore

    store = PolicyStore(policies, interval=3600)
    pod = yaml.safe_load(TYPICAL_POD.read_text())
    request = admission_review(pod)["request"]
    req = parse(pod["metadata"]["annotations"])
    model = store.resolve("llm", req.model)
    return pure_times({
        "mutation (mutate.mutate)": lambda: mutate(pod, req, model),
        "mutation + policy lookup + JSON patch (answer_mutation)": lambda: admission.answer_mutation(request, store),
    }, number=200)


def pure_times(functions: dict[str, Callable[[], object]], number: int) -> dict[str, float]:
    """Milliseconds per call of each function: the median of 3 bests of 5 x NUMBER calls."""
    out = {}
    for name, fn in functions.items():
        runs = [min(timeit.repeat(fn, number=number, repeat=5)) / number * 1000 for _ in range(3)]
        out[name] = statistics.median(runs)
    return out


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every webhook benchmark takes."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-class", choices=["gevent", "gthread"], default="gevent",
                    help="the server's worker model (serve's default: gevent)")
    ap.add_argument("--threads", type=int, default=8, help="threads per worker (gthread only)")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    return ap


def report(results: dict[str, Any], args: argparse.Namespace, endpoints: tuple[str, ...], use_wrk: bool) -> None:
    """Prints RESULTS as JSON (--json) or as the markdown table of docs/benchmarks.md."""
    results["client"] = "wrk" if use_wrk else "python"
    model = f"{args.workers} gthread workers x {args.threads} threads" if args.worker_class == "gthread" \
        else f"{args.workers} gevent workers"
    results["setup"] = f"{model}, {args.connections} keep-alive connections, {args.duration}s, {os.cpu_count()} cores"
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"# {results['setup']}, load from {results['client']}")
    print("| endpoint | p50 ms | p99 ms | requests/s | non-2xx |")
    print("|---|---|---|---|---|")
    for name in endpoints:
        r = results[name]
        print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} | {r['non_2xx']:.0f} |")
    for name, ms in results["pure_ms"].items():
        print(f"| pure: {name} | {ms:.3f} | | | |")


def main() -> None:
    ap = arguments(__doc__.splitlines()[0])
    ap.add_argument("--policies", default=str(REPO / "policies"))
    args = ap.parse_args()
    policies = Path(args.policies)

    results: dict[str, Any] = {"pure_ms": pure_mutation_ms(policies)}
    body = json.dumps(admission_review(yaml.safe_load(TYPICAL_POD.read_text()))).encode()
    use_wrk = shutil.which("wrk") is not None
    with running_server(policies, args.workers, args.threads, worker_class=args.worker_class) as (port, cafile):
        for name, path, payload in (("/healthz", "/healthz", None), ("/mutate", "/mutate", body)):
            results[name] = measure(port, cafile, path, payload, args.connections, args.duration, use_wrk)
    report(results, args, ("/healthz", "/mutate"), use_wrk)


if __name__ == "__main__":
    main()
