"""The storage strategies, one module each,
in the order the docs and messages list them. The policy schema (each
strategy's settings), the mutation, the validating half, explain and the
generated docs read them from here; a new strategy is a new module and one
line below."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from webhook.facts.model import ModelView
from webhook.strategies import hostpath, image, memory, nfs, oci, pvc
from webhook.strategies.base import Strategy, either
from webhook.strategies.image_source import OCI_SCHEME


REGISTRY: Mapping[str, Strategy] = MappingProxyType({
    s.name: s for s in (pvc.STRATEGY, hostpath.STRATEGY, memory.STRATEGY, oci.STRATEGY, image.STRATEGY, nfs.STRATEGY)
})


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Strategy:
    """The strategy NAME; KeyError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no strategy {name!r}; the strategies are {', '.join(REGISTRY)}") from None


def with_settings() -> tuple[Strategy, ...]:
    """The strategies that have a section of the policy's defaults, in order."""
    return tuple(s for s in REGISTRY.values() if s.settings_key)


def serving(oci_source: bool) -> tuple[str, ...]:
    """The strategies that serve a model from an oci:// image (True) or a download (False)."""
    return tuple(name for name, strategy in REGISTRY.items() if strategy.oci_source == oci_source)


def unfit_source(name: str, source: str) -> str | None:
    """Why strategy NAME cannot serve a model from SOURCE (an oci:// image, or
    what the downloader fetches), naming the strategies that can."""
    oci = source.startswith(OCI_SCHEME)
    if get(name).oci_source == oci:
        return None
    what = "an oci:// image" if oci else "a download (hf://, s3://, https://)"
    return f"strategy \"{name}\" cannot serve {what}; use strategy {either(serving(oci))}"


def unusable(name: str, model: ModelView) -> str | None:
    """Why strategy NAME cannot serve MODEL as its policy stands: its source, or
    what the strategy itself needs of the policy."""
    return unfit_source(name, model.spec.source) or get(name).unusable(model)
