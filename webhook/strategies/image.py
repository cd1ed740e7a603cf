"""Strategy `image`: the model is an OCI image mounted as a Kubernetes image
volume (Kubernetes 1.33+); nothing to download or copy. The serving mount's
subPath is the policy's ociPath. Warned about: an image by tag."""

from __future__ import annotations

from typing import Any

from webhook.facts.cluster import ClusterFacts
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.strategies.base import Strategy
from webhook.strategies.image_source import image_reference, tag_findings


class Image(Strategy):
    name = "image"
    volume_doc = "a Kubernetes image volume (`image.reference`)"
    init_doc = "none"
    serving_doc = "mount read-only"
    oci_source = True

    def volume(self, model: ModelView) -> dict[str, Any]:
        return {"image": {"reference": image_reference(model.spec.source), "pullPolicy": "IfNotPresent"}}

    def sub_path(self, model: ModelView) -> str | None:
        # An image volume shows the whole image filesystem; the model is under ociPath.
        return (model.spec.ociPath or "").strip("/") or None

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        return tag_findings(model)


STRATEGY = Image()
