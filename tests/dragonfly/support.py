"""Helpers of the Dragonfly tests (here and in tests/download): a Hub-protocol
model on the test origin, the downloader started through a daemon's socket."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.download.origin import HubRepo, Origin
from tests.download.support import download_cmd
from tests.dragonfly.swarm import Daemon
from tests.helpers import REPO

MiB = 1 << 20
COMMIT = "c0ffee" + "0" * 34


def hub_model(origin: Origin, name: str, big: int = 24 * MiB) -> HubRepo:
    """A repo NAME on ORIGIN: one LFS file of BIG bytes (six 4 MiB pieces), a config."""
    seed = hashlib.sha256(name.encode()).digest()
    weights = (seed * (big // len(seed) + 1))[:big]
    weights = bytes(b ^ (i % 251) for i, b in enumerate(weights[:4096])) + weights[4096:]
    repo = HubRepo(COMMIT, {"model.safetensors": weights, "config.json": b'{"layers": 2}'}, lfs={"model.safetensors"})
    origin.repos[f"org/{name}"] = repo
    return repo


def env_for(dl_env: dict[str, str], origin: Origin) -> dict[str, str]:
    return {**dl_env, "HF_ENDPOINT": f"http://127.0.0.1:{origin.port}"}


def through(d: Daemon | Path, mode: str = "direct") -> tuple[str, ...]:
    sock = d.socket if isinstance(d, Daemon) else d
    return ("--dragonfly-socket", str(sock), "--dragonfly-if-unavailable", mode)


def start(env: dict[str, str], name: str, dest: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(download_cmd(f"hf://org/{name}", dest, *extra), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(p: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def weights_served(origin: Origin, name: str) -> int:
    with origin.lock:
        return sum(n for path, n in origin.served.items() if path.endswith("model.safetensors") and name in path)
