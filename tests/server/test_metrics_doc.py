"""The README's /metrics row names every metric family the webhook serves,
and no other (issue 29: the certificate expiry and the cluster lookups were
missing)."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import webhook.server.metrics  # noqa: F401 - registers the review metrics
import webhook.validate.lookups  # noqa: F401 - registers the lookup metrics
from tests.helpers import REPO
from webhook.certs import expiry


def test_the_readme_lists_every_metric_served() -> None:
    served = {m.name for m in REGISTRY.collect() if m.name.startswith("model_cache_")}
    served.add(expiry.NAME)  # a collector of its own, registered by the app with the certificate's path
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `GET /metrics`"))
    # prometheus_client names a counter's family without its _total suffix.
    listed = {re.sub(r"_total$", "", name) for name in re.findall(r"`(model_cache_\w+)", row)}
    assert listed == {re.sub(r"_total$", "", name) for name in served}
