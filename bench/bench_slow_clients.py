"""Does `model-cache serve` keep answering while many connections sit idle or
trickle bytes? Holds N connections of one kind open against a real server over
TLS on loopback, and meanwhile times real /mutate reviews, each on a new
connection (TCP + TLS + request, as the API server makes one) and on one
kept-alive connection.

    .venv/bin/python bench/bench_slow_clients.py [--connections 500] [--requests 200]
    .venv/bin/python bench/bench_slow_clients.py --source /tmp/mc-before   # an older checkout

Kinds of held connection (each reopened as soon as the server closes it, as
an attacker would, so that N stay open or in progress):

- idle: TCP connect and TLS handshake, then nothing;
- slow-header: a request line, then one header byte per second;
- slow-body: a whole head announcing a 1 MB body, then one body byte per second.

A review that gets no answer in --timeout seconds (the webhook's own
timeoutSeconds is 5) counts as failed, and a phase stops after 5 failures:
the run stays bounded however starved the server is. The holders run in a
process of their own (`hold` below), so that their work does not slow the
timing client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
SERVICE_DNS_NAME = "model-cache.model-cache.svc"
KINDS = ("idle", "slow-header", "slow-body")
TRICKLE_SECONDS = 1.0


# --- the held connections (the `hold` subcommand, in its own process) ------------


async def _one(kind: str, port: int, ctx: ssl.SSLContext, stats: dict[str, int], stop: asyncio.Event) -> None:
    """One held connection of KIND, reopened whenever the server closes it."""
    while not stop.is_set():
        writer = None
        stats["connecting"] += 1
        try:
            # The handshake may never complete on a starved server: the
            # connection is held all the same (accepted, ClientHello sent).
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname=SERVICE_DNS_NAME, ssl_handshake_timeout=3600)
            stats["connecting"] -= 1
            stats["open"] += 1
            try:
                if kind == "slow-header":
                    writer.write(b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nX-Slow: ")
                elif kind == "slow-body":
                    writer.write(b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 1000000\r\n\r\n{")
                while not stop.is_set():
                    if kind != "idle":
                        writer.write(b"a")
                    await writer.drain()
                    # Returns early when the server closes the connection.
                    try:
                        data = await asyncio.wait_for(reader.read(65536), TRICKLE_SECONDS)
                    except asyncio.TimeoutError:
                        continue
                    if not data:
                        break
            finally:
                stats["open"] -= 1
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            stats["connecting"] -= 1 if writer is None else 0
        finally:
            stats["closed_by_server"] += 0 if stop.is_set() else 1
            if writer is not None:
                writer.close()
        await asyncio.sleep(0.05)


async def _hold(kinds: list[str], count: int, port: int, cafile: str) -> None:
    ctx = ssl.create_default_context(cafile=cafile)
    stats = {"open": 0, "connecting": 0, "closed_by_server": 0}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_one(kinds[i % len(kinds)], port, ctx, stats, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # not a SYN flood: the listen backlog is finite
    while not stop.is_set():
        print(json.dumps(stats), flush=True)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Holders:
    """`count` connections of `kinds` (round robin) held against a server, in a
    subprocess; `status()` is its latest count of open connections."""

    def __init__(self, port: int, cafile: Path, kinds: list[str], count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "hold", "--port", str(port), "--cafile", str(cafile),
             "--kinds", ",".join(kinds), "--connections", str(count)],
            stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.count = count
        self.last: dict[str, int] = {"open": 0, "connecting": 0, "closed_by_server": 0}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.last = json.loads(line)

    def status(self) -> dict[str, int]:
        return dict(self.last)

    def wait_held(self, timeout: float) -> dict[str, int]:
        """Until all are open or connecting (accepted by the kernel at least)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s["open"] + s["connecting"] >= self.count and s["open"] > 0:
                break
            time.sleep(0.1)
        return self.status()

    def wait_open(self, minimum: int, timeout: float) -> dict[str, int]:
        """Until MINIMUM have completed their TLS handshake, or TIMEOUT."""
        deadline = time.monotonic() + timeout
        while self.status()["open"] < minimum and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.status()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Holders":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- real reviews -------------------------------------------------------------------


def _http_post(sock: ssl.SSLSocket, body: bytes) -> int:
    sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: model-cache\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        rest += chunk
    return int(head.split(b" ", 2)[1])


def review_on_new_connection(port: int, ctx: ssl.SSLContext, body: bytes, timeout: float) -> float:
    """Seconds for connect + handshake + one /mutate; raises on failure or timeout."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=SERVICE_DNS_NAME) as tls:
            tls.settimeout(max(0.01, timeout - (time.perf_counter() - started)))
            status = _http_post(tls, body)
    if status != 200:
        raise RuntimeError(f"HTTP {status}")
    return time.perf_counter() - started


class KeptAlive:
    def __init__(self, port: int, ctx: ssl.SSLContext, timeout: float) -> None:
        self.port, self.ctx, self.timeout = port, ctx, timeout
        self.sock: ssl.SSLSocket | None = None

    def review(self, body: bytes) -> float:
        started = time.perf_counter()
        try:
            if self.sock is None:  # reopened when the server closed it (idle timeout) or it failed
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                self.sock = self.ctx.wrap_socket(raw, server_hostname=SERVICE_DNS_NAME)
            self.sock.settimeout(self.timeout)
            status = _http_post(self.sock, body)
        except BaseException:
            self.close()
            raise
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return time.perf_counter() - started

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def typical_body() -> bytes:
    import yaml

    sys.path.insert(0, str(REPO))
    from tests.helpers import pod_review

    pod = yaml.safe_load((REPO / "tests" / "golden" / "vllm-gpu-pvc.in.yaml").read_text())
    return json.dumps(pod_review(pod)).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(port: int, cafile: Path, requests: int, timeout: float, pause: float, max_failures: int = 5) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    body = typical_body()
    kept = KeptAlive(port, ctx, timeout)
    out: dict[str, Any] = {}
    for mode in ("new", "kept"):
        times: list[float] = []
        failures: list[str] = []
        for _ in range(requests):
            try:
                times.append(review_on_new_connection(port, ctx, body, timeout) if mode == "new" else kept.review(body))
            except (OSError, RuntimeError, ssl.SSLError, StopIteration) as err:
                failures.append(type(err).__name__)
                if len(failures) >= max_failures:
                    break
            time.sleep(pause)
        out[mode] = {
            "answered": len(times), "failed": len(failures),
            "p50_ms": round(statistics.median(times) * 1000, 1) if times else None,
            "p99_ms": round(percentile(times, 99) * 1000, 1) if times else None,
            "max_ms": round(max(times) * 1000, 1) if times else None,
        }
    kept.close()
    return out


# --- the server ---------------------------------------------------------------------


def free_port() -> int:
    # Its own: this file also runs as a bare script in the holder processes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(source: Path, workers: int, extra: list[str]) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    """`model-cache serve` from the package at SOURCE (this checkout, or an older one)."""
    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-slow-"))
    certs = tmp / "certs"
    env = {**os.environ, "PYTHONPATH": str(source)}
    cli = [sys.executable, "-c", "import sys; from webhook.cli import main; sys.exit(main())"]
    subprocess.run([*cli, "certs", "generate", "--out", str(certs)], check=True, capture_output=True, env=env)
    port = free_port()
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen(
        [*cli, "serve", "--policies", str(source / "policies"), "--cert", str(certs / "tls.crt"), "--key", str(certs / "tls.key"),
         "--port", str(port), "--host", "127.0.0.1", "--workers", str(workers), "--log-level", "warning", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"https://localhost:{port}/readyz", context=ctx, timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + (tmp / "serve.log").read_text())
            time.sleep(0.1)
    try:
        yield port, certs / "ca.crt", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def rss_mib(pid: int) -> float:
    """Resident memory of the server: the master and its workers."""
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    hold = sub.add_parser("hold", help="(internal) hold connections; prints their counts every 0.5 s")
    hold.add_argument("--port", type=int, required=True)
    hold.add_argument("--cafile", required=True)
    hold.add_argument("--kinds", default="idle")
    hold.add_argument("--connections", type=int, default=500)
    parser.add_argument("--connections", type=int, default=500, help="connections held in each phase")
    parser.add_argument("--requests", type=int, default=200, help="reviews timed per phase and mode (new, kept-alive)")
    parser.add_argument("--timeout", type=float, default=5.0, help="a review not answered by then failed")
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between two timed reviews")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source", type=Path, default=REPO, help="checkout whose `webhook` package serves (default: this one)")
    parser.add_argument("--phases", default="none,idle,slow-header,slow-body,mixed")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra argument for serve (repeatable)")
    args = parser.parse_args()
    if args.command == "hold":
        asyncio.run(_hold(args.kinds.split(","), args.connections, args.port, args.cafile))
        return 0

    results = []
    with running_server(args.source.resolve(), args.workers, args.serve_arg) as (port, cafile, proc):
        measure(port, cafile, 20, args.timeout, 0)  # warm-up: imports, first contexts
        for phase in args.phases.split(","):
            kinds = {"none": [], "mixed": list(KINDS)}.get(phase, [phase])
            started = time.monotonic()
            if not kinds:
                row = {"phase": phase, "held": 0, "server_rss_mib": rss_mib(proc.pid),
                       **measure(port, cafile, args.requests, args.timeout, args.pause)}
            else:
                with Holders(port, cafile, kinds, args.connections) as holders:
                    holders.wait_held(30)
                    holders.wait_open(args.connections, 5)  # all of them, unless the server cannot take them
                    rss = rss_mib(proc.pid)
                    row = {"phase": phase, "held": args.connections, "at_start": holders.status(),
                           **measure(port, cafile, args.requests, args.timeout, args.pause)}
                    row["at_end"] = holders.status()
                    row["server_rss_mib"] = rss
            row["seconds"] = round(time.monotonic() - started, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| held | connections | new conn. p50 / p99 ms (answered) | kept-alive p50 / p99 ms (answered) | reopened | server RSS MiB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        def cell(m: dict[str, Any]) -> str:
            if not m["answered"]:
                return f"none answered ({m['failed']} timed out)"
            failed = f", {m['failed']} failed" if m["failed"] else ""
            return f"{m['p50_ms']} / {m['p99_ms']} ({m['answered']}{failed})"
        reopened = r.get("at_end", {}).get("closed_by_server", "")
        print(f"| {r['phase']} | {r['held']} | {cell(r['new'])} | {cell(r['kept'])} | {reopened} | {r['server_rss_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
