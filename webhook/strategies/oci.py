"""Strategy `oci`: the model is an OCI image (a modelcar); an init container
runs it and copies `ociPath/.` into an emptyDir the size of the model. No
downloader. Warned about: an image by tag. Denied: no copy container to fill it."""

from __future__ import annotations

from typing import Any

from webhook.facts.cluster import ClusterFacts
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.strategies.base import Strategy
from webhook.strategies.image_source import tag_findings
from webhook.vocabulary import OCI_COPY


class Oci(Strategy):
    name = "oci"
    volume_doc = "`emptyDir` with `sizeLimit` = model size"
    init_doc = "none: an init container runs the model image and copies `ociPath/.` into the volume"
    serving_doc = "mount read-only"
    copies = True
    oci_source = True

    def volume(self, model: ModelView) -> dict[str, Any]:
        return {"emptyDir": {"sizeLimit": model.spec.size}}

    def denial(self, use: CacheUse) -> str | None:
        if use.oci_copy:
            return None
        return (
            f"model {use.model} uses strategy oci but the pod has no init container {OCI_COPY}: the volume starts "
            f"empty and nothing fills it; recreate the pod or fix the webhook that removed it"
        )

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        return tag_findings(model)


STRATEGY = Oci()
