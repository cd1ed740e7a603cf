"""N nodes, one origin download: hostpath downloads through Dragonfly on one
machine (docs/benchmarks.md#hostpath-through-dragonfly-issue-28).

One scheduler, one seed peer and N dfdaemons (tests/dragonfly/swarm.py), each
with its own host name, loopback IP (127.X.Y.11...), ports and storage, so
the scheduler treats them as different hosts; N `model-cache download`s
started at once, one per daemon (--dragonfly-socket), each into its own
"node" directory, from the Hub-protocol origin of tests/download behind
bench/throttle_proxy.py (a link cap and a per-connection cap, as a remote
origin).

    .venv/bin/python bench/bench_dragonfly.py --nodes 4 8 --size-mib 512 --link-mbps 50 --workdir /tmp/mc-dfbench
    .venv/bin/python bench/bench_dragonfly.py --netns --nodes 4 8 --size-mib 256 --link-mbps 8 --node-mbps 16 \
        --kills --workdir /tmp/mc-dfbench          # capped links (root): the figures of docs/benchmarks.md
    ... --candidate-parents 3                       # Dragonfly's default parent limit, to compare

--netns puts the origin, the seed and every node in a network namespace of
its own (tests/dragonfly/netns.py), each link capped both ways with tc: the
origin's at --link-mbps, the seed's at --seed-mbps, each node's at
--node-mbps; the scheduler sits on the bridge. Without it everything is on
loopback, only the origin is capped (the throttling proxy), and peers
exchange pieces as fast as memory.

Reports, per N: origin bytes / model size, the slowest node's time / T1 (one
node downloading straight from the same origin, no Dragonfly), each node's
time and bytes served to its peers (the daemons' upload metrics), and
whether every node's sha256 is right, and how busy the machine's CPU was
(near 100%, the run measured the cores, not the links). Then, with --kills, N=4 again with the
seed SIGKILLed once the origin has sent a quarter of the model, and with one
daemon SIGKILLed once the origin has sent half (its downloader falls back to
the origin, the policy's ifUnavailable: direct).

"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench/ is a package of the checkout

from bench.ports import free_port  # noqa: E402
from tests.download.origin import HubRepo, Origin  # noqa: E402
from tests.dragonfly.netns import Net, in_ns, why_not as netns_why_not  # noqa: E402
from tests.dragonfly.swarm import BACK_TO_SOURCE_COUNT, CANDIDATE_PARENT_LIMIT, Swarm, why_not  # noqa: E402

MC = str(Path(sys.executable).with_name("model-cache"))
MiB = 1 << 20
COMMIT = "bench0" + "0" * 34
WEIGHTS = "model.safetensors"


def make_repo(size: int) -> HubRepo:
    """The same bytes in every process that asks (the origin runs in a process of its own)."""
    import random

    rng = random.Random(28)
    chunk = 64 * MiB  # randbytes takes at most 2**31 bits at once
    body = b"".join(rng.randbytes(min(chunk, size - at)) for at in range(0, size, chunk))
    return HubRepo(COMMIT, {WEIGHTS: body, "config.json": b'{"bench": true}'},
                   lfs={WEIGHTS})


def cpu_times() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks so far, all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all cores busy between two cpu_times(): near 1.0, the
    run measured the machine's CPU, not the links."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def serve_origin(host: str, size: int) -> None:
    """The origin process: the Hub-protocol origin of tests/download on HOST;
    prints its port, then answers `stats` (bytes of the weights served) and
    `reset` on stdin."""
    origin = Origin(host)
    origin.repos["org/bench"] = make_repo(size)
    origin.start()
    print(origin.port, flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            origin.reset_counts()
            print("ok", flush=True)
        elif line.strip() == "stats":
            with origin.lock:
                print(sum(n for p, n in origin.served.items() if p.endswith(WEIGHTS)), flush=True)


class _SharedNet(Net):
    """The bench's one bridge, lent to a swarm: its hosts join it, and the
    swarm's close removes only them."""

    def __init__(self, base: Net) -> None:  # noqa: D107 - no new bridge
        self.tag, self.prefix, self.hub, self.namespaces, self._n = base.tag, base.prefix, base.hub, [], 100 * random_run()

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()


_RUNS = [0]


def random_run() -> int:
    _RUNS[0] += 1
    return _RUNS[0]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.workdir)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.repo = make_repo(args.size_mib * MiB)
        self.size = len(self.repo.files[WEIGHTS])
        self.sha = hashlib.sha256(self.repo.files[WEIGHTS]).hexdigest()
        self.repo = None  # the origin process has its own copy
        self.links: Net | None = Net() if args.netns else None
        self.proxy = None
        if self.links is not None:
            ns, host = self.links.host("origin", 2, args.link_mbps)
            self.origin = self._serve(ns, host)
            endpoint = f"http://{host}:{self.origin_port}"
        else:
            self.origin = self._serve(None, "127.0.0.1")
            proxy_port = free_port()
            self.proxy = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "throttle_proxy.py"), str(proxy_port), str(self.origin_port),
                 "--conn-mbps", str(args.conn_mbps), "--link-mbps", str(args.link_mbps),
                 "--latency-ms", str(args.latency_ms)], stdout=subprocess.PIPE, text=True)
            assert self.proxy.stdout is not None and self.proxy.stdout.readline().strip() == "ready"
            endpoint = f"http://127.0.0.1:{proxy_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MODEL_CACHE_", "AWS_"))}
        self.env.update({"HF_ENDPOINT": endpoint, "HF_HOME": str(self.work / "hf-home"),
                         "HF_HUB_DISABLE_TELEMETRY": "1", "MODEL_CACHE_PROGRESS_SECONDS": "30"})
        self._direct_ns: str | None = None

    def _serve(self, ns: str | None, host: str) -> subprocess.Popen:
        p = subprocess.Popen(in_ns(ns, [sys.executable, __file__, "--serve-origin", host, str(self.size)]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None
        self.origin_port = int(p.stdout.readline())
        return p

    def _ask(self, what: str) -> str:
        assert self.origin.stdin is not None and self.origin.stdout is not None
        self.origin.stdin.write(what + "\n")
        self.origin.stdin.flush()
        return self.origin.stdout.readline().strip()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait()
        self.origin.terminate()
        self.origin.wait()
        if self.links is not None:
            self.links.close()

    def origin_bytes(self) -> int:
        return int(self._ask("stats"))

    def reset(self) -> None:
        assert self._ask("reset") == "ok"

    def download(self, dest: Path, *extra: str, ns: str | None = None) -> subprocess.Popen:
        dest.parent.mkdir(parents=True, exist_ok=True)
        log = open(dest.parent.parent.parent / "download.log", "w")
        return subprocess.Popen(in_ns(ns, [MC, "download", "--source", "hf://org/bench", "--dest", str(dest), *extra]),
                                env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def right(self, dest: Path) -> bool:
        h = hashlib.sha256()
        with open(dest / WEIGHTS, "rb") as f:
            while chunk := f.read(4 * MiB):
                h.update(chunk)
        return h.hexdigest() == self.sha

    # -- runs ------------------------------------------------------------------

    def t1(self) -> float:
        self.reset()
        dest = self.work / "direct" / "cache" / "bench" / "main"
        ns = self.links.host("direct", 200, self.args.node_mbps)[0] if self.links is not None else None
        t0 = time.monotonic()
        p = self.download(dest, ns=ns)
        assert p.wait() == 0, (self.work / "direct" / "download.log").read_text()
        took = time.monotonic() - t0
        assert self.right(dest)
        print(f"T1 (one node, straight from the origin): {took:.1f} s, origin bytes {self.origin_bytes() / self.size:.3f}x",
              flush=True)
        return took

    def swarm_run(self, n: int, t1: float, kill: str | None = None) -> dict:
        root = self.work / f"swarm-{n}-{kill or 'clean'}"
        # The swarm's hosts join the origin's bridge, a namespace each.
        links = _SharedNet(self.links) if self.links is not None else None
        sw = Swarm(root / "dragonfly", back_to_source_count=self.args.back_to_source, links=links,
                   candidate_parent_limit=self.args.candidate_parents,
                   link_mbps=self.args.node_mbps, seed_mbps=self.args.seed_mbps)
        try:
            sw.start_scheduler()
            sw.add("seed", seed=True)
            nodes = [sw.add(f"node{i}") for i in range(1, n + 1)]
            sw.wait_seed_known()
            self.reset()
            dests = [root / d.name / "cache" / "bench" / "main" for d in nodes]
            cpu0 = cpu_times()
            t0 = time.monotonic()
            procs = [self.download(dest, "--dragonfly-socket", str(d.socket), "--dragonfly-if-unavailable", "direct",
                                   ns=d.ns) for d, dest in zip(nodes, dests)]
            times: list[float | None] = [None] * n
            killed = None
            while any(t is None for t in times):
                for i, p in enumerate(procs):
                    if times[i] is None and p.poll() is not None:
                        times[i] = time.monotonic() - t0
                if kill == "seed" and killed is None and self.origin_bytes() >= self.size // 4:
                    killed = "seed"
                    sw.kill(sw.daemons["seed"])
                    print(f"  killed the seed at origin bytes {self.origin_bytes() / self.size:.2f}x", flush=True)
                if kill == "daemon" and killed is None and self.origin_bytes() >= self.size // 2:
                    killed = "node1"
                    sw.kill(nodes[0])
                    print(f"  killed node1's dfdaemon at origin bytes {self.origin_bytes() / self.size:.2f}x", flush=True)
                time.sleep(0.05)
            busy = cpu_busy(cpu0, cpu_times())
            codes = [p.returncode for p in procs]
            ok = [c == 0 and self.right(dest) for c, dest in zip(codes, dests)]
            served = {d.name: sw.bytes_uploaded(d) for d in [sw.daemons["seed"], *nodes] if d.alive()}
            result = {
                "n": n, "kill": kill, "origin_x": self.origin_bytes() / self.size,
                "slowest_s": max(t for t in times if t is not None), "t1_s": t1,
                "times_s": [round(t, 1) for t in times if t is not None],
                "served_to_peers_mib": {k: round(v / MiB) for k, v in served.items()},
                "sha256_right": sum(ok), "exit_codes": codes, "cpu_busy": round(busy, 2),
            }
            result["slowest_over_t1"] = result["slowest_s"] / t1
            for i, p in enumerate(procs):
                if codes[i] != 0 or not ok[i]:
                    print((root / nodes[i].name / "download.log").read_text()[-3000:], flush=True)
            return result
        finally:
            sw.stop()

    def report(self, r: dict) -> None:
        what = {None: "", "seed": " (seed SIGKILLed at 0.25x)", "daemon": " (node1's dfdaemon SIGKILLed at 0.5x)"}[r["kill"]]
        print(f"N={r['n']}{what}: origin bytes {r['origin_x']:.3f}x the model, slowest {r['slowest_s']:.1f} s = "
              f"{r['slowest_over_t1']:.2f}x T1 ({r['t1_s']:.1f} s), sha256 right on {r['sha256_right']}/{r['n']}; "
              f"times {r['times_s']}; machine CPU busy {r['cpu_busy']:.0%}; served to peers (MiB) {r['served_to_peers_mib']}", flush=True)
        print("  " + json.dumps(r), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--link-mbps", type=float, default=50.0, help="the origin's link cap, MB/s")
    ap.add_argument("--conn-mbps", type=float, default=25.0, help="the origin's per-connection cap, MB/s")
    ap.add_argument("--latency-ms", type=float, default=10.0)
    ap.add_argument("--back-to-source", type=int, default=BACK_TO_SOURCE_COUNT,
                    help="the scheduler's backToSourceCount (Dragonfly's default: 200)")
    ap.add_argument("--candidate-parents", type=int, default=CANDIDATE_PARENT_LIMIT,
                    help="the scheduler's candidateParentLimit: parents offered to each peer")
    ap.add_argument("--netns", action="store_true", help="a network namespace per host, links capped by tc (root)")
    ap.add_argument("--node-mbps", type=float, default=None, help="with --netns: each node's link, MB/s each way")
    ap.add_argument("--seed-mbps", type=float, default=None, help="with --netns: the seed's link (default: --node-mbps)")
    ap.add_argument("--serve-origin", nargs=2, metavar=("HOST", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--kills", action="store_true", help="also N=4 with the seed, then a daemon, killed mid-run")
    ap.add_argument("--workdir", default="/tmp/mc-dfbench")
    args = ap.parse_args()
    if args.serve_origin:
        serve_origin(args.serve_origin[0], int(args.serve_origin[1]))
        return 0
    if args.seed_mbps is None:
        args.seed_mbps = args.node_mbps
    reason = why_not() or (netns_why_not() if args.netns else None)
    if reason:
        print(f"bench_dragonfly: {reason}", file=sys.stderr)
        return 2
    b = Bench(args)
    try:
        links = (f"network namespaces: origin link {args.link_mbps} MB/s, each node {args.node_mbps} MB/s, seed "
                 f"{args.seed_mbps} MB/s, each way" if args.netns else
                 f"loopback: origin link {args.link_mbps} MB/s, {args.conn_mbps} MB/s per connection, "
                 f"{args.latency_ms} ms; peers uncapped")
        print(f"model: {b.size / MiB:.0f} MiB ({WEIGHTS}) + config.json; {links}; backToSourceCount "
              f"{args.back_to_source}, candidateParentLimit {args.candidate_parents}", flush=True)
        t1 = b.t1()
        for n in args.nodes:
            b.report(b.swarm_run(n, t1))
        if args.kills:
            b.report(b.swarm_run(4, t1, kill="seed"))
            b.report(b.swarm_run(4, t1, kill="daemon"))
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
