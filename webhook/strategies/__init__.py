"""The storage strategies, one module each (pvc, hostpath, memory, oci, image),
in the order the docs and messages list them. The policy schema, the mutation,
the validating half, explain and docs/strategies.md read them from here; a new
strategy is a new module and one line below."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from webhook.strategies import hostpath, image, memory, oci, pvc
from webhook.strategies.base import Strategy

REGISTRY: Mapping[str, Strategy] = MappingProxyType({
    s.name: s for s in (pvc.STRATEGY, hostpath.STRATEGY, memory.STRATEGY, oci.STRATEGY, image.STRATEGY)
})


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Strategy:
    """The strategy NAME; KeyError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no strategy {name!r}; the strategies are {', '.join(REGISTRY)}") from None
