"""Certificate reload in a running `model-cache serve` (gunicorn and its
workers, webhook/server/tls.py), with no failed request: while a client keeps
calling, the files change under the server, and new connections get the new
certificate while a connection opened before keeps working.

The second test runs the whole self-managed path: serve with --tls-secret
against the fake API server; another replica's renewal lands in the Secret,
the master's background thread writes the files, the workers reload them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.fakes import FakeApiServer
from tests.helpers import POLICIES, SERVICE_DNS_NAME, WEBHOOKS_MANIFEST
from tests.server_process import RunningServer, start_server, stop_server
from webhook.certs import x509 as certs
from webhook.certs.rotation import Action, Facts, RotationPolicy, apply
from webhook.certs.secret import build_secret, state_from_secret

NAMES = certs.service_dns_names("model-cache", "model-cache")
DEADLINE = 30.0  # an upper bound for "eventually", never a timing under test


def fetch(port: int, cafile: Path) -> tuple[int, str]:
    """GET /healthz on a new connection; returns the status and the SHA-256
    fingerprint of the certificate the server presented (verified against CAFILE)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=SERVICE_DNS_NAME) as tls:
            served = peer_fingerprint(tls)
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: model-cache\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return int(data.split(b" ", 2)[1]), served


def peer_fingerprint(tls: ssl.SSLSocket) -> str:
    der = tls.getpeercert(binary_form=True)
    assert der is not None, "the server presented no certificate"
    return hashlib.sha256(der).hexdigest()


def fingerprint(cert_file: Path) -> str:
    """The SHA-256 fingerprint of the certificate in a PEM file, as
    `openssl x509 -noout -fingerprint -sha256` shows it (without colons)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_file.read_text())).hexdigest()


def pem_fingerprint(pem: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


class Load:
    """Requests on new connections in a loop until stopped; records failures."""

    def __init__(self, port: int, cafile: Path) -> None:
        self.port, self.cafile = port, cafile
        self.count = 0
        self.failures: list[str] = []
        self.seen: set[str] = set()  # fingerprints
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

    def wait_for(self, served: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while served not in self.seen and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.05)
        assert served in self.seen, f"new certificate not served within {DEADLINE}s; failures: {self.failures[:3]}"


def serve(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> RunningServer:
    """`model-cache serve` on a copy of the example policies, its files in TMP/tls."""
    policies = tmp / "policies"
    shutil.copytree(POLICIES, policies, dirs_exist_ok=True)
    return start_server(tmp, policies, env, list(extra), workers=2, threads=4, certs=tmp / "tls")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, certs.CertPair]]:
    ca = certs.make_ca()
    certs.write_files(tmp_path / "tls", ca, certs.make_serving(ca, NAMES))
    server = serve(tmp_path)
    try:
        yield server.port, tmp_path, ca
    finally:
        stop_server(server)


def test_new_certificate_files_are_served_without_a_failed_request(served: tuple[int, Path, certs.CertPair]) -> None:
    port, tmp, old_ca = served
    d = tmp / "tls"
    new_ca = certs.make_ca()
    # The client trusts both CAs, as the API server does during a roll-over.
    trust = tmp / "bundle.crt"
    trust.write_bytes(certs.join_bundle([old_ca.cert_pem, new_ca.cert_pem]))
    old = fingerprint(d / "tls.crt")
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
            assert load.seen == {old}
            certs.write_atomic(d / "tls.crt", new.cert_pem)
            rotated = fingerprint(d / "tls.crt")
            assert rotated != old
            load.wait_for(rotated)
            after = load.count
            while load.count < after + 20 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert load.failures == [], load.failures[:5]
        assert load.count >= 40

        # A connection made before the rotation still answers, with the old certificate.
        assert peer_fingerprint(kept) == old
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
        streak = streak + 1 if cert == rotated else 0
    assert streak == 10, "a worker kept serving the old certificate"


def test_self_managed_serve_follows_the_secret_and_repairs_the_cabundle(tmp_path: Path) -> None:
    with FakeApiServer() as fake:
        fake.seed_manifests(WEBHOOKS_MANIFEST)
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        server = serve(tmp_path, "--tls-secret", "model-cache-tls", "--tls-namespace", "model-cache",
                       "--cert-check-interval", "0.2", env={"KUBECONFIG": str(kubeconfig)})
        try:
            secret = fake.get("secrets", "model-cache-tls", "model-cache")
            assert secret is not None, "serve must create the Secret before it listens"
            state = state_from_secret(secret)
            trust = tmp_path / "tls" / "ca.crt"
            assert fetch(server.port, trust)[1] == pem_fingerprint(state.serving.cert_pem)

            # Another replica renews: this server must switch to that certificate.
            now = dt.datetime.now(dt.timezone.utc)
            renewed = apply(state, Action.RENEW_SERVING, Facts(now, tuple(NAMES), True, RotationPolicy()))
            with Load(server.port, trust) as load:
                fake.put("secrets", build_secret("model-cache-tls", "model-cache", renewed), "model-cache")
                load.wait_for(pem_fingerprint(renewed.serving.cert_pem))
            assert load.failures == [], load.failures[:5]
            # What is served is what the master wrote to the files.
            assert fingerprint(tmp_path / "tls" / "tls.crt") == pem_fingerprint(renewed.serving.cert_pem)

            # A re-apply blanks the caBundle: the master's thread patches it back.
            want = fake.get("mutatingwebhookconfigurations", "model-cache")["webhooks"][0]["clientConfig"]["caBundle"]
            fake.edit("mutatingwebhookconfigurations", "model-cache",
                      [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}])
            assert "caBundle" not in fake.get("mutatingwebhookconfigurations", "model-cache")["webhooks"][0]["clientConfig"]
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                if fake.get("mutatingwebhookconfigurations", "model-cache")["webhooks"][0]["clientConfig"].get("caBundle") == want:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("caBundle not patched back:\n" + server.log_text())
        finally:
            stop_server(server)


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
    # A handshake with the context it built presents the new certificate.
    assert handshake(holder.get(), tmp_path / "ca.crt") == fingerprint(tmp_path / "tls.crt") == pem_fingerprint(new.cert_pem)


def handshake(server_context: ssl.SSLContext, cafile: Path) -> str:
    """The fingerprint of the certificate a server with SERVER_CONTEXT presents."""
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        accepted = threading.Thread(target=lambda: server_context.wrap_socket(server_end, server_side=True).close())
        accepted.start()
        client = ssl.create_default_context(cafile=str(cafile))
        with client.wrap_socket(client_end, server_hostname=SERVICE_DNS_NAME) as tls:
            served = peer_fingerprint(tls)
        accepted.join(timeout=10)
    return served
