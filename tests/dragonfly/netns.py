"""Hosts with links of their own on one machine: a network namespace per
host, each joined by a veth pair to a bridge in a hub namespace, each link
capped both ways by `tc` (tbf), so that N "nodes" on one machine have N
uplinks and N downlinks the way a fleet does (on loopback every peer link
is as fast as memory, which hides the fan-out). Needs root and iproute2.

Every address is inside a namespace made here (10.X.Y.0/24 on the bridge),
and everything is deleted on close.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass, field


def why_not() -> str | None:
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    probe = f"mcprobe{random.randint(0, 99999)}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot make a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _tc(ns: str, dev: str, mbps: float) -> None:
    # tbf: a byte-rate cap with a burst of 1 MiB; MB/s (10^6 bytes) as the rest of the benchmarks.
    rate = f"{int(mbps * 8)}mbit"
    r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
                        "burst", "1mb", "latency", "200ms"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tc on {ns}/{dev}: {r.stderr.strip()}")


@dataclass
class Net:
    tag: str = field(default_factory=lambda: f"mc{random.randint(0, 9999)}")
    prefix: str = field(default_factory=lambda: f"10.{random.randint(64, 250)}.{random.randint(1, 250)}.")
    namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hub = f"{self.tag}-hub"
        _ip("netns", "add", self.hub)
        self.namespaces.append(self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{self.prefix}1/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        self._n = 0

    @property
    def hub_ip(self) -> str:
        return f"{self.prefix}1"

    def host(self, name: str, octet: int, mbps: float | None) -> tuple[str, str]:
        """A namespace NAME with address PREFIX.OCTET, its link capped at MBPS
        (MB/s) each way, or uncapped: (namespace, address)."""
        ns = f"{self.tag}-{name}"
        self._n += 1
        inside, outside = f"{self.tag}i{self._n}"[:15], f"{self.tag}o{self._n}"[:15]
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", self.hub)
        ip = f"{self.prefix}{octet}"
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", self.hub, "link", "set", outside, "master", "br0")
        _ip("-n", self.hub, "link", "set", outside, "up")
        if mbps:
            _tc(ns, inside, mbps)          # what the host sends: its uplink
            _tc(self.hub, outside, mbps)   # what it receives: its downlink
        return ns, ip

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()


def in_ns(ns: str | None, cmd: list[str]) -> list[str]:
    return cmd if ns is None else ["ip", "netns", "exec", ns, *cmd]
