"""Which strategies can serve a model, by where it comes from: an oci:// image
or a download. The policy schema and the mutation word their denials with it."""

from __future__ import annotations

from webhook.strategies import REGISTRY


def serving(oci_source: bool) -> tuple[str, ...]:
    """The strategies that serve a model from an oci:// image (True) or a download (False)."""
    return tuple(name for name, strategy in REGISTRY.items() if strategy.oci_source == oci_source)
