"""A CA and a serving certificate, made with `cryptography`.

The serving certificate names the Service the API server calls
(`NAME.NS.svc` and its longer forms) plus localhost, so one pair serves both
the cluster and local use.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
# Certificates start a little in the past so that a node whose clock runs
# behind still accepts them. Rotation code reads a CA's creation time back as
# not_valid_before + BACKDATE.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def matches_key(self) -> bool:
        """True when the private key belongs to the certificate (a pair read
        back from a Secret someone edited by hand may not)."""
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        return key.public_key() == self.cert.public_key()  # type: ignore[comparison-overlap]


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def split_bundle(pem: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, each as its own PEM block (bytes
    between blocks, such as comments, are dropped)."""
    return [c.public_bytes(serialization.Encoding.PEM) for c in x509.load_pem_x509_certificates(pem)] if pem.strip() else []


def join_bundle(certs: list[bytes]) -> bytes:
    return b"".join(c if c.endswith(b"\n") else c + b"\n" for c in certs)


def not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


def not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


def dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.DNSName))


def is_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when CA's key signed CERT (not just a matching issuer name: two of
    our CAs share one name)."""
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the API server may use for a Service, most specific last."""
    if service == "localhost":
        return ["localhost"]
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def make_ca(common_name: str = "model-cache-ca", now: dt.datetime | None = None,
            validity: dt.timedelta = CA_VALIDITY) -> CertPair:
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_serving(ca: CertPair, dns_names: list[str], now: dt.datetime | None = None,
                 validity: dt.timedelta = SERVING_VALIDITY) -> CertPair:
    now = now or dt.datetime.now(dt.timezone.utc)
    ca_cert = ca.cert
    # A certificate that outlives its issuer would fail on the CA's last day
    # anyway; capping it makes the planner renew it in time.
    expires = min(now + validity, ca_cert.not_valid_after_utc)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[-1])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(expires)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replaces PATH in one rename, so a server reloading it never reads half
    a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_files(out: Path, ca: CertPair, serving: CertPair) -> None:
    """Writes ca.crt, tls.crt and tls.key; each file replaced atomically."""
    write_atomic(out / "ca.crt", ca.cert_pem)
    write_atomic(out / "tls.key", serving.key_pem, 0o600)
    write_atomic(out / "tls.crt", serving.cert_pem)


def generate(out: Path, service: str = "model-cache", namespace: str = "model-cache") -> list[str]:
    """`model-cache certs generate`: a new CA and serving certificate in OUT.
    Returns the DNS names the certificate carries."""
    names = service_dns_names(service, namespace)
    if "localhost" not in names:
        names = ["localhost", *names]
    ca = make_ca()
    write_files(out, ca, make_serving(ca, names))
    return names
