"""What the two strategies served from an oci:// image (`oci`, `image`) share:
the image reference, and the warning for an image named by tag."""

from __future__ import annotations

from webhook.facts.finding import Finding
from webhook.facts.model import ModelView


OCI_SCHEME = "oci://"


def image_reference(source: str) -> str:
    return source.removeprefix(OCI_SCHEME)


def tag_findings(model: ModelView) -> list[Finding]:
    """A warning when the policy names the model image by tag: a tag can move,
    so replicas may serve different weights."""
    ref = image_reference(model.spec.source)
    if "@" in ref:  # pinned by digest (name@sha256:..., or name:tag@sha256:...)
        return []
    last = ref.rsplit("/", 1)[-1]
    shown = ref if ":" in last else f"{ref} (tag latest)"
    return [Finding("oci-tag", (
        f"model {model.name}: image {shown} is a tag: pin it by digest (@sha256:...) in the policy"
    ))]
