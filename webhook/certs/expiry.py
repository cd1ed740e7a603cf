"""Certificate expiry as Prometheus gauges, read from the files at scrape time.

Read at scrape time in the worker that answers /metrics, rather than set by
the certificate manager: that runs in the gunicorn master, whose values a
multiprocess registry would only see if prometheus_client were imported
after PROMETHEUS_MULTIPROC_DIR is set. The files are the truth anyway: they
are what the server presents and what it trusts.

  model_cache_certificate_expiry_timestamp_seconds{certificate="serving"}
  model_cache_certificate_expiry_timestamp_seconds{certificate="ca"}   (earliest of the bundle)

Alert on `model_cache_certificate_expiry_timestamp_seconds - time() < 30*86400`:
renewal starts 60 days ahead, so that means renewal has been failing for a month.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webhook.certs import x509

NAME = "model_cache_certificate_expiry_timestamp_seconds"


def expiry_seconds(certfile: Path, cafile: Path) -> dict[str, float]:
    """{"serving": not_after, "ca": earliest not_after in the bundle} as Unix
    time, for the files that exist and parse."""
    out: dict[str, float] = {}
    try:
        out["serving"] = x509.not_after(x509.load_cert(certfile.read_bytes())).timestamp()
    except (OSError, ValueError):
        pass
    try:
        bundle = x509.split_bundle(cafile.read_bytes())
        if bundle:
            out["ca"] = min(x509.not_after(x509.load_cert(p)) for p in bundle).timestamp()
    except (OSError, ValueError):
        pass
    return out


class CertificateCollector(Collector):
    """Register it in the registry /metrics renders:
    `registry.register(CertificateCollector(certfile))`; the CA bundle is
    read from ca.crt beside the certificate."""

    def __init__(self, certfile: str | Path, cafile: str | Path | None = None) -> None:
        self.certfile = Path(certfile)
        self.cafile = Path(cafile) if cafile else self.certfile.parent / "ca.crt"

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(NAME, "When the certificate expires (Unix time); ca: the earliest CA of the bundle.",
                                   labels=["certificate"])
        for which, when in sorted(expiry_seconds(self.certfile, self.cafile).items()):
            family.add_metric([which], when)
        yield family
