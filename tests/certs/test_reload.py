"""Certificate reload in a running `model-cache serve` (gunicorn, gthread
workers, webhook/tls.py), with no failed request: while a client keeps
calling, the files change under the server, and new connections get the new
certificate while a connection opened before keeps working.

The second test runs the whole self-managed path: serve with --tls-secret
against the fake API server; another replica's renewal lands in the Secret,
the master's background thread writes the files, the workers reload them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import MODEL_CACHE, free_port
from tests.fake_kube import FakeKube, kubeconfig_for
from tests.helpers import POLICIES, SERVICE_DNS_NAME
from webhook.certs import x509 as certs
from webhook.certs.rotation import Action, Facts, RotationPolicy, apply
from webhook.certs.secret import build_secret, state_from_secret

from tests.helpers import REPO  # noqa: E402
NAMES = certs.service_dns_names("model-cache", "model-cache")
DEADLINE = 30.0  # an upper bound for "eventually", never a timing under test


def fetch(port: int, cafile: Path) -> tuple[int, bytes]:
    """GET /healthz on a new connection; returns the status and the DER of the
    certificate the server presented (verified against CAFILE)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=SERVICE_DNS_NAME) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: model-cache\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return int(data.split(b" ", 2)[1]), der


def der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return certs.load_cert(pem).public_bytes(Encoding.DER)


class Load:
    """Requests on new connections in a loop until stopped; records failures."""

    def __init__(self, port: int, cafile: Path) -> None:
        self.port, self.cafile = port, cafile
        self.count = 0
        self.failures: list[str] = []
        self.seen: set[bytes] = set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set() and self.count < 20000:
            try:
                status, cert = fetch(self.port, self.cafile)
                self.seen.add(cert)
                if status != 200:
                    self.failures.append(f"status {status}")
            except (OSError, ssl.SSLError) as err:
                self.failures.append(repr(err))
            self.count += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)

    def wait_for(self, cert_der: bytes) -> None:
        deadline = time.monotonic() + DEADLINE
        while cert_der not in self.seen and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.05)
        assert cert_der in self.seen, f"new certificate not served within {DEADLINE}s; failures: {self.failures[:3]}"


def start(cmd: list[str], log: Path, port: int, cafile: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + DEADLINE
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"model-cache serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if cafile.exists() and fetch(port, cafile)[0] == 200:
                return proc
        except (OSError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"model-cache serve not ready:\n{log.read_text()}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def serve_cmd(tmp: Path, port: int, *extra: str) -> list[str]:
    policies = tmp / "policies"
    shutil.copytree(POLICIES, policies, dirs_exist_ok=True)
    d = tmp / "tls"
    return [MODEL_CACHE, "serve", "--policies", str(policies), "--cert", str(d / "tls.crt"),
            "--key", str(d / "tls.key"), "--port", str(port), "--host", "127.0.0.1", "--workers", "2",
            "--threads", "4", *extra]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, certs.CertPair]]:
    ca = certs.make_ca()
    certs.write_files(tmp_path / "tls", ca, certs.make_serving(ca, NAMES))
    port = free_port()
    proc = start(serve_cmd(tmp_path, port), tmp_path / "serve.log", port, tmp_path / "tls" / "ca.crt")
    try:
        yield port, tmp_path, ca
    finally:
        stop(proc)


def test_new_certificate_files_are_served_without_a_failed_request(served: tuple[int, Path, certs.CertPair]) -> None:
    port, tmp, old_ca = served
    d = tmp / "tls"
    new_ca = certs.make_ca()
    # The client trusts both CAs, as the API server does during a roll-over.
    trust = tmp / "bundle.crt"
    trust.write_bytes(certs.join_bundle([old_ca.cert_pem, new_ca.cert_pem]))
    old_der = der((d / "tls.crt").read_bytes())
    new = certs.make_serving(new_ca, NAMES)

    kept = ssl.create_default_context(cafile=str(trust)).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=SERVICE_DNS_NAME)
    try:
        with Load(port, trust) as load:
            deadline = time.monotonic() + DEADLINE
            while load.count < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            # Half a rotation first: a new key with the old certificate does
            # not load, so the old pair must go on being served.
            certs.write_atomic(d / "tls.key", new.key_pem, 0o600)
            # Held for 30 requests, but not past 1.5 s: a worker that has not
            # built its first context yet waits (up to tls.FIRST_LOAD_PATIENCE)
            # for the pair to match, and holds the client's request meanwhile.
            before, half = load.count, time.monotonic() + 1.5
            while load.count < before + 30 and time.monotonic() < half:
                time.sleep(0.02)
            assert load.seen == {old_der}
            certs.write_atomic(d / "tls.crt", new.cert_pem)
            load.wait_for(der(new.cert_pem))
            after = load.count
            while load.count < after + 20 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert load.failures == [], load.failures[:5]
        assert load.count >= 40

        # A connection made before the rotation still answers, with the old certificate.
        assert kept.getpeercert(binary_form=True) == old_der
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: model-cache\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        kept.close()

    # Soon every worker has reloaded (each checks its files at most once a
    # second, on a new connection): then every new connection gets the new one.
    streak, deadline = 0, time.monotonic() + DEADLINE
    while streak < 10 and time.monotonic() < deadline:
        status, cert = fetch(port, trust)
        assert status == 200
        streak = streak + 1 if cert == der(new.cert_pem) else 0
    assert streak == 10, "a worker kept serving the old certificate"


def test_self_managed_serve_follows_the_secret_and_repairs_the_cabundle(tmp_path: Path) -> None:
    with FakeKube() as fake:
        fake.seed_manifests(REPO / "manifests" / "base" / "webhooks.yaml")
        kubeconfig = kubeconfig_for(fake, tmp_path / "kubeconfig")
        port = free_port()
        cmd = serve_cmd(tmp_path, port, "--tls-secret", "model-cache-tls", "--tls-namespace", "model-cache",
                        "--cert-check-interval", "0.2")
        proc = start(cmd, tmp_path / "serve.log", port, tmp_path / "tls" / "ca.crt", env={"KUBECONFIG": str(kubeconfig)})
        try:
            secret = fake.get("secrets", "model-cache-tls", "model-cache")
            assert secret is not None, "serve must create the Secret before it listens"
            state = state_from_secret(secret)
            trust = tmp_path / "tls" / "ca.crt"
            assert fetch(port, trust)[1] == der(state.serving.cert_pem)

            # Another replica renews: this server must switch to that certificate.
            now = dt.datetime.now(dt.timezone.utc)
            renewed = apply(state, Action.RENEW_SERVING, Facts(now, tuple(NAMES), True, RotationPolicy()))
            with Load(port, trust) as load:
                fake.put("secrets", build_secret("model-cache-tls", "model-cache", renewed), "model-cache")
                load.wait_for(der(renewed.serving.cert_pem))
            assert load.failures == [], load.failures[:5]

            # A re-apply blanks the caBundle: the master's thread patches it back.
            mut = fake.get("mutatingwebhookconfigurations", "model-cache")
            want = mut["webhooks"][0]["clientConfig"]["caBundle"]
            del mut["webhooks"][0]["clientConfig"]["caBundle"]
            fake.put("mutatingwebhookconfigurations", mut)
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                if fake.get("mutatingwebhookconfigurations", "model-cache")["webhooks"][0]["clientConfig"].get("caBundle") == want:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("caBundle not patched back:\n" + (tmp_path / "serve.log").read_text())
        finally:
            stop(proc)


def test_a_worker_starting_mid_rotation_waits_for_the_pair_instead_of_failing(tmp_path: Path) -> None:
    """A worker's first connection can land between the key and the
    certificate writes: there is no old context to keep, so it must wait."""
    from webhook.server.tls import ReloadingContext

    ca = certs.make_ca()
    old, new = certs.make_serving(ca, NAMES), certs.make_serving(ca, NAMES)
    certs.write_files(tmp_path, ca, old)
    certs.write_atomic(tmp_path / "tls.key", new.key_pem, 0o600)  # half a rotation
    finish = threading.Timer(0.3, certs.write_atomic, (tmp_path / "tls.crt", new.cert_pem))
    finish.start()
    try:
        holder = ReloadingContext(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    finally:
        finish.join()
    assert holder.get() is not None
    assert (tmp_path / "tls.crt").read_bytes() == new.cert_pem
