"""Strategy `image`: the model is an OCI image mounted as a Kubernetes image
volume (Kubernetes 1.33+); nothing to download or copy. The serving mount's
subPath is the policy's ociPath. Warned about: an image by tag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webhook.strategies.base import Strategy
from webhook.strategies.images import image_reference, tag_findings
from webhook.validate.facts import ClusterFacts
from webhook.validate.finding import Finding

if TYPE_CHECKING:
    from webhook.policy.resolved import ResolvedModel
    from webhook.validate.usage import CacheUse


class Image(Strategy):
    name = "image"
    volume_doc = "a Kubernetes image volume (`image.reference`)"
    init_doc = "none"
    serving_doc = "mount read-only"
    oci_source = True

    def volume(self, model: ResolvedModel) -> dict[str, Any]:
        return {"image": {"reference": image_reference(model.spec.source), "pullPolicy": "IfNotPresent"}}

    def sub_path(self, model: ResolvedModel) -> str | None:
        # An image volume shows the whole image filesystem; the model is under ociPath.
        return (model.spec.ociPath or "").strip("/") or None

    def findings(self, use: CacheUse, model: ResolvedModel, facts: ClusterFacts) -> list[Finding]:
        return tag_findings(model)


STRATEGY = Image()
