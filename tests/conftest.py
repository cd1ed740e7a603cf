from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import POLICIES, REPO

MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    port: int
    certs: Path
    policies: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def cafile(self) -> Path:
        return self.certs / "ca.crt"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(tmp: Path, policies: Path, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, workers: int = 2) -> RunningServer:
    """`model-cache serve` as a process, as a user runs it; returns once /readyz answers."""
    import ssl
    import urllib.request

    certs = tmp / "certs"
    if not (certs / "tls.crt").exists():
        subprocess.run([MODEL_CACHE, "certs", "generate", "--out", str(certs)], check=True, capture_output=True)
    port = free_port()
    log = tmp / f"serve-{port}.log"
    cmd = [MODEL_CACHE, "serve", "--policies", str(policies), "--cert", str(certs / "tls.crt"),
           "--key", str(certs / "tls.key"), "--port", str(port), "--host", "127.0.0.1",
           "--workers", str(workers), *(extra_args or [])]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp,
                                env={**os.environ, **(env or {})})
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"model-cache serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"https://localhost:{port}/readyz", context=ctx, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"model-cache serve not ready in 30 s:\n{log.read_text()}")
        time.sleep(0.1)
    return RunningServer(port, certs, policies, proc, log)


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The webhook on the example policies, over TLS, shared by the tests of a worker."""
    tmp = tmp_path_factory.mktemp("server")
    policies = tmp / "policies"
    shutil.copytree(POLICIES, policies)
    running = start_server(tmp, policies)
    yield running
    stop_server(running)


@pytest.fixture()
def policies_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
