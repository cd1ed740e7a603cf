"""`model-cache serve` as a process, as a user runs it, for the tests that
talk to it over TLS."""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.helpers import MODEL_CACHE, POLICIES, TLSClient, free_port


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
                 extra_args: list[str] | None = None, workers: int = 2, *,
                 certs: Path | None = None, threads: int | None = None) -> RunningServer:
    """`model-cache serve` as a process, as a user runs it; returns once /readyz
    answers over TLS for the Service's name. CERTS (default TMP/certs) holds
    tls.crt, tls.key and ca.crt: made with `model-cache certs generate` when
    absent, unless EXTRA_ARGS make the server write them itself (--tls-secret)."""
    certs = certs or tmp / "certs"
    self_managed = "--tls-secret" in (extra_args or [])
    if not self_managed and not (certs / "tls.crt").exists():
        subprocess.run([MODEL_CACHE, "certs", "generate", "--out", str(certs)], check=True, capture_output=True)
    port = free_port()
    log = tmp / f"serve-{port}.log"
    cmd = [MODEL_CACHE, "serve", "--policies", str(policies), "--cert", str(certs / "tls.crt"),
           "--key", str(certs / "tls.key"), "--port", str(port), "--host", "127.0.0.1",
           "--workers", str(workers), *(["--threads", str(threads)] if threads else []), *(extra_args or [])]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp,
                                env={**os.environ, **(env or {})})
    running = RunningServer(port, certs, policies, proc, log)
    deadline = time.monotonic() + 30
    while not _ready(running):
        if proc.poll() is not None:
            raise RuntimeError(f"model-cache serve exited {proc.returncode}:\n{running.log_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"model-cache serve not ready in 30 s:\n{running.log_text()}")
        time.sleep(0.1)
    return running


def _ready(server: RunningServer) -> bool:
    if not server.cafile.exists():  # a self-managed server writes it before it listens
        return False
    try:
        client = TLSClient(server.port, server.cafile)
    except (OSError, ssl.SSLError):
        return False
    try:
        return client.request("GET", "/readyz")[0] == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        client.close()


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@contextmanager
def serving_example_policies(tmp: Path, workers: int) -> Iterator[RunningServer]:
    """`model-cache serve` of a copy of the example policies (TMP/policies),
    stopped on the way out."""
    shutil.copytree(POLICIES, tmp / "policies")
    running = start_server(tmp, tmp / "policies", workers=workers)
    try:
        yield running
    finally:
        stop_server(running)
