"""Dragonfly on one machine: a manager-less scheduler, a seed peer and N
dfdaemons (the binaries scripts/dragonfly-bins builds), each daemon with its
own host name, loopback IP, ports and storage, so that the scheduler treats
them as different hosts. Used by tests/dragonfly and bench/bench_dragonfly.py.

Each swarm takes a /24 of its own under 127.0.0.0/8 (a random third octet
nobody listens on): a daemon's storage port binds without SO_REUSEADDR, so a
restart on the same address fails for a minute (TIME_WAIT); fresh addresses
avoid that.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from contextlib import contextmanager

import yaml

from tests.apiserver.controlplane import Proc, spawn, wait_for
from tests.dragonfly.netns import Net, in_ns
from tests.helpers import REPO

BINARIES = ("scheduler", "dfdaemon")
SCHEDULER_PORT = 8002
# The scheduler refreshes its list of seed peers on this fixed ticker
# (resource/standard/seed_peer.go, SeedPeerRefreshInterval): a task started
# before the first refresh that saw the seed goes to the origin without it.
SEED_REFRESH = 30.0
# The scheduler's back-to-source limit per task (scheduler.backToSourceCount,
# at least 1): a peer may go to the origin while at most this many of the
# task's peers are there (CanBackToSource is `len <= count`), so 2 at a time;
# a peer that finishes or leaves (a killed seed) makes room. Dragonfly's
# default is 200.
BACK_TO_SOURCE_COUNT = 1
# Parents the scheduler offers each peer (schedulerClusterConfig.candidateParentLimit;
# Dragonfly's default 3). With 1 the nodes that start together form a chain
# instead of all waiting on the seed's upload (docs/dragonfly.md, measured by
# bench/bench_dragonfly.py --candidate-parents).
CANDIDATE_PARENT_LIMIT = 1


def bins_dir() -> Path:
    out = subprocess.run([str(REPO / "scripts" / "dragonfly-bins"), "--dir"], check=True,
                         capture_output=True, text=True, timeout=30).stdout.strip()
    return Path(out)


def why_not() -> str | None:
    """Why Dragonfly cannot run here, or None when it can."""
    d = bins_dir()
    missing = [b for b in BINARIES if not (d / b).is_file()]
    if missing:
        return f"{', '.join(missing)} not built in {d}: run scripts/dragonfly-bins (scripts/test does)"
    return None


def _free_net() -> str:
    """A 127.X.Y. prefix whose scheduler address nobody listens on."""
    for _ in range(100):
        prefix = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}."
        with socket.socket() as s:
            try:
                s.bind((prefix + "1", SCHEDULER_PORT))
            except OSError:
                continue
        return prefix
    raise RuntimeError("no free 127.X.Y.0/24 for a Dragonfly swarm")


@dataclass
class Daemon:
    name: str
    ip: str
    dir: Path
    seed: bool
    proc: Proc | None = None
    ns: str | None = None  # its network namespace (tests/dragonfly/netns.py), or None: loopback

    @property
    def socket(self) -> Path:
        return self.dir / "dfdaemon.sock"

    @property
    def storage(self) -> Path:
        return self.dir / "storage"

    @property
    def upload_addr(self) -> tuple[str, int]:
        return self.ip, 4000

    def log_text(self) -> str:
        logs = sorted((self.dir / "log").rglob("*.log*")) if (self.dir / "log").exists() else []
        return "".join(p.read_text(errors="replace") for p in logs)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.popen.poll() is None


def daemon_config(d: Daemon) -> dict:
    ip = d.ip
    return {
        "host": {"hostname": d.name, "ip": ip},
        "server": {"pluginDir": str(d.dir / "plugins"), "cacheDir": str(d.dir / "cache")},
        "download": {"server": {"socketPath": str(d.socket)}},
        "upload": {"server": {"ip": ip, "port": 4000}},
        "scheduler": {"announceInterval": "10s"},
        "seedPeer": {"enable": d.seed, "type": "super" if d.seed else "normal"},
        "storage": {"server": {"ip": ip, "tcpPort": 4005, "quicPort": 4006}, "dir": str(d.storage)},
        "proxy": {"server": {"ip": ip, "port": 4001}},
        "metrics": {"server": {"ip": ip, "port": 4002}},
        "health": {"server": {"ip": ip, "port": 4003}},
        "stats": {"server": {"ip": ip, "port": 4004}},
    }


@dataclass
class Swarm:
    root: Path
    bins: Path = field(default_factory=bins_dir)
    net: str = field(default_factory=_free_net)
    back_to_source_count: int = BACK_TO_SOURCE_COUNT
    candidate_parent_limit: int = CANDIDATE_PARENT_LIMIT
    # Hosts with capped links (a namespace each, tests/dragonfly/netns.py)
    # instead of loopback addresses; LINK_MBPS caps each daemon's link both ways.
    links: Net | None = None
    link_mbps: float | None = None
    seed_mbps: float | None = None
    scheduler: Proc | None = None
    scheduler_started: float = 0.0
    daemons: dict[str, Daemon] = field(default_factory=dict)
    _next_host: int = 11

    def __post_init__(self) -> None:
        if self.links is not None:
            self.net = self.links.prefix

    @property
    def scheduler_ns(self) -> str | None:
        return self.links.hub if self.links is not None else None

    @property
    def scheduler_addr(self) -> str:
        return f"{self.net}1:{SCHEDULER_PORT}"

    def start_scheduler(self) -> None:
        d = self.root / "scheduler"
        for sub in ("log", "data", "plugins"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        ip = self.net + "1"
        cfg = {
            "server": {"advertiseIP": ip, "advertisePort": SCHEDULER_PORT, "listenIP": ip, "port": SCHEDULER_PORT,
                       "host": "scheduler-local", "logDir": str(d / "log"), "dataDir": str(d / "data"),
                       "pluginDir": str(d / "plugins")},
            "scheduler": {"algorithm": "default", "retryInterval": "500ms", "retryLimit": 10,
                          "retryBackToSourceLimit": 4, "backToSourceCount": self.back_to_source_count},
            "job": {"enable": False},
            "metrics": {"enable": False},
        }
        dyn = {"applications": [], "seedPeerClusterConfig": {"loadLimit": 2000},
               "schedulerClusterConfig": {"candidateParentLimit": self.candidate_parent_limit, "filterParentLimit": 15},
               "schedulerClusterClientConfig": {"loadLimit": 200}}
        (d / "scheduler.yaml").write_text(yaml.safe_dump(cfg))
        (d / "dyn.yaml").write_text(yaml.safe_dump(dyn))
        self.scheduler = spawn("scheduler", in_ns(self.scheduler_ns, [
            str(self.bins / "scheduler"), "--config", str(d / "scheduler.yaml"), "--dynconfig", str(d / "dyn.yaml")]),
            d / "stdout.log")
        self.scheduler_started = time.monotonic()
        wait_for("the scheduler's port", lambda: _listening(ip, SCHEDULER_PORT, self.scheduler_ns), timeout=60,
                 procs=(self.scheduler,))

    def add(self, name: str, *, seed: bool = False, wait: bool = True, where: Path | None = None) -> Daemon:
        """A daemon NAME (the seed peer if SEED), its socket, storage and logs
        in WHERE (default: the swarm's directory NAME), started."""
        if seed:
            octet = 10
        else:
            octet = self._next_host
            self._next_host += 1
        ns = None
        if self.links is not None:
            ns, ip = self.links.host(name, octet, self.seed_mbps if seed else self.link_mbps)
        else:
            ip = f"{self.net}{octet}"
        d = Daemon(name, ip, where or self.root / name, seed, ns=ns)
        self.daemons[name] = d
        self.start(d, wait=wait)
        return d

    def start(self, d: Daemon, *, wait: bool = True) -> None:
        for sub in ("log", "plugins", "cache", "storage"):
            (d.dir / sub).mkdir(parents=True, exist_ok=True)
        (d.dir / "dfdaemon.yaml").write_text(yaml.safe_dump(daemon_config(d)))
        (d.dir / "dyn.yaml").write_text(yaml.safe_dump({"scheduler": {"addrs": [self.scheduler_addr]}}))
        d.proc = spawn(d.name, in_ns(d.ns, [str(self.bins / "dfdaemon"), "-c", str(d.dir / "dfdaemon.yaml"),
                                            "--dynconfig", str(d.dir / "dyn.yaml"), "--log-dir", str(d.dir / "log")]),
                       d.dir / "stdout.log")
        if wait:
            self.wait_ready(d)

    def wait_ready(self, d: Daemon, timeout: float = 60) -> None:
        assert d.proc is not None
        wait_for(f"{d.name}'s socket and upload port",
                 lambda: _connects(d.socket) and _listening(*d.upload_addr, d.ns), timeout=timeout, procs=(d.proc,))

    def wait_seed_known(self) -> None:
        """Until the scheduler's seed list (refreshed every 30 s from its own
        start) has been refreshed after the seed announced itself."""
        seeds = [d for d in self.daemons.values() if d.seed]
        assert seeds, "no seed peer in this swarm"
        ready_at = time.monotonic()
        since = ready_at - self.scheduler_started
        ticks = int(since // SEED_REFRESH) + 1
        due = self.scheduler_started + ticks * SEED_REFRESH + 2.0
        wait_for("the scheduler's seed refresh", lambda: time.monotonic() >= due, timeout=SEED_REFRESH + 10,
                 every=0.5, procs=(self.scheduler,) if self.scheduler else ())

    def kill(self, d: Daemon, sig: int = signal.SIGKILL) -> None:
        if d.alive():
            assert d.proc is not None
            os.killpg(d.proc.popen.pid, sig)
            d.proc.popen.wait(timeout=30)

    def stop(self) -> None:
        for d in self.daemons.values():
            if d.alive():
                assert d.proc is not None
                d.proc.stop(grace=10)
        if self.scheduler is not None:
            self.scheduler.stop(grace=10)
        if self.links is not None:
            self.links.close()

    def bytes_uploaded(self, d: Daemon) -> int:
        """Bytes D served to other peers, from its Prometheus metrics."""
        return int(_metric_sum(d.ip, 4002, "dragonfly_client_upload_traffic", d.ns))

    def tails(self) -> str:
        out = [self.scheduler.tail()] if self.scheduler else []
        out += [d.proc.tail() for d in self.daemons.values() if d.proc is not None]
        return "\n".join(out)


_FETCH = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
_CONNECT = "import socket, sys; sys.exit(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) and 0)"


def _metric_sum(ip: str, port: int, name: str, ns: str | None = None) -> float:
    import sys
    import urllib.request

    try:
        if ns is None:
            with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        else:
            text = subprocess.run(in_ns(ns, [sys.executable, "-c", _FETCH, f"http://{ip}:{port}/metrics"]),
                                  capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _listening(ip: str, port: int, ns: str | None = None) -> bool:
    if ns is not None:
        import sys

        return subprocess.run(in_ns(ns, [sys.executable, "-c", _CONNECT, ip, str(port)]), capture_output=True,
                              timeout=30).returncode == 0
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((ip, port)) == 0


def _connects(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        return s.connect_ex(str(path)) == 0


@contextmanager
def running_swarm(root: Path, nodes: int, *, seed: bool = True, **kw) -> Iterator[Swarm]:
    """A scheduler, a seed (unless SEED is false) and NODES daemons node1..N, up."""
    sw = Swarm(root, **kw)
    try:
        sw.start_scheduler()
        if seed:
            sw.add("seed", seed=True)
        for i in range(1, nodes + 1):
            sw.add(f"node{i}")
        yield sw
    finally:
        sw.stop()
