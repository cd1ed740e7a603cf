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
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


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
        .not_valid_before(now - dt.timedelta(minutes=5))
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
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
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


def write_files(out: Path, ca: CertPair, serving: CertPair) -> None:
    """Writes ca.crt, tls.crt and tls.key; each file replaced atomically so a
    server reloading them never reads half a file."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data, mode in (
        ("ca.crt", ca.cert_pem, 0o644),
        ("tls.crt", serving.cert_pem, 0o644),
        ("tls.key", serving.key_pem, 0o600),
    ):
        tmp = out / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / name)


def generate(out: Path, service: str = "model-cache", namespace: str = "model-cache") -> list[str]:
    """`model-cache certs generate`: a new CA and serving certificate in OUT.
    Returns the DNS names the certificate carries."""
    names = service_dns_names(service, namespace)
    if "localhost" not in names:
        names = ["localhost", *names]
    ca = make_ca()
    write_files(out, ca, make_serving(ca, names))
    return names
