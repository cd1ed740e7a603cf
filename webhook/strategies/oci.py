"""Strategy `oci`: the model is an OCI image (a modelcar); an init container
runs it and copies `ociPath/.` into an emptyDir the size of the model. No
downloader. Warned about: an image by tag. Denied: no copy container to fill it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webhook.strategies.base import Strategy
from webhook.strategies.images import tag_findings
from webhook.validate.facts import ClusterFacts
from webhook.validate.finding import Finding
from webhook.vocabulary import OCI_COPY

if TYPE_CHECKING:
    from webhook.policy.resolved import ResolvedModel
    from webhook.validate.usage import CacheUse


class Oci(Strategy):
    name = "oci"
    volume_doc = "`emptyDir` with `sizeLimit` = model size"
    init_doc = "none: an init container runs the model image and copies `ociPath/.` into the volume"
    serving_doc = "mount read-only"
    copies = True
    oci_source = True

    def volume(self, model: ResolvedModel) -> dict[str, Any]:
        return {"emptyDir": {"sizeLimit": model.spec.size}}

    def denial(self, use: CacheUse) -> str | None:
        if use.oci_copy:
            return None
        return (
            f"model {use.model} uses strategy oci but the pod has no init container {OCI_COPY}: the volume starts "
            f"empty and nothing fills it; recreate the pod or fix the webhook that removed it"
        )

    def findings(self, use: CacheUse, model: ResolvedModel, facts: ClusterFacts) -> list[Finding]:
        return tag_findings(model)


STRATEGY = Oci()
