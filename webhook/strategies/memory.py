"""Strategy `memory`: a memory-backed emptyDir the size of the model, filled by
the downloader at every pod start. Its pages are charged to the pod, so the
downloader's memory limit and the first serving container's memory request and
limit grow by the model's size. Warned about: the download at every start, and
a serving container with no memory limit. Denied: no downloader to fill it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from webhook import quantity
from webhook.errors import Denied, QuantityError
from webhook.facts.cluster import ClusterFacts
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.quantity import describe as format_size
from webhook.strategies.base import Strategy
from webhook.vocabulary import DOWNLOADER, PRELOAD


class Memory(Strategy):
    name = "memory"
    volume_doc = "`emptyDir` `medium: Memory`, `sizeLimit` = model size (twice that for a `.zip` source)"
    init_doc = "writes `<model>/<revision>/`; its memory limit covers the volume"
    serving_doc = ("mount it read-only (`subPath`); the first serving container's memory request and limit "
                   "(where set) grow by the model size")
    downloads = True

    def volume(self, model: ModelView) -> dict[str, Any]:
        return {"emptyDir": {"medium": "Memory", "sizeLimit": quantity.exact(model.volume_bytes)}}

    def grow_downloader(self, container: dict[str, Any], model: ModelView) -> None:
        # The downloader writes the model into tmpfs: its memory limit must hold
        # it, and a zip beside its contents while it unpacks them.
        grow_memory(container, model.volume_bytes, ("limits",))

    def grow_serving(self, container: dict[str, Any], model: ModelView) -> None:
        # The tmpfs pages are charged to the pod: without this the server is OOM-killed
        # as soon as it maps the weights.
        grow_memory(container, model.size_bytes, ("requests", "limits"))

    def denial(self, use: CacheUse) -> str | None:
        if use.preload:
            return None
        return (
            f"model {use.model} uses strategy memory but the pod has no init container {DOWNLOADER}: the memory "
            f"volume starts empty and nothing fills it; drop {PRELOAD}: \"false\" or use strategy pvc"
        )

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        out: list[Finding] = []
        size = format_size(model.size_bytes, round_up=True)
        if use.preload:
            out.append(Finding("memory-preload", (
                f"model {model.name} ({size}) uses strategy memory: it is downloaded again on every pod start; "
                f"use strategy pvc or hostpath"
            )))
        # Pod-level resources (Kubernetes >= 1.32) bound the whole pod, tmpfs included.
        pod_limit = ((use.spec.get("resources") or {}).get("limits") or {}).get("memory")
        unbounded = [c.get("name", "?") for c in use.serving if not _has_memory_limit(c)]
        if pod_limit is None and unbounded:
            out.append(Finding("memory-no-limit", (
                f"model {model.name} keeps {size} in memory but container {', '.join(unbounded)} has no memory limit: "
                f"set resources.limits.memory"
            )))
        return out


STRATEGY = Memory()


def _has_memory_limit(container: Mapping[str, Any]) -> bool:
    return ((container.get("resources") or {}).get("limits") or {}).get("memory") is not None


def grow_memory(container: dict[str, Any], size: Decimal, kinds: tuple[str, ...]) -> None:
    """Adds SIZE to the container's memory request and/or limit, where set."""
    resources = container.get("resources") or {}
    for kind in kinds:
        current = (resources.get(kind) or {}).get("memory")
        if current is None:
            continue
        try:
            grown = quantity.parse(current) + size
        except QuantityError as err:
            raise Denied(f"container {container.get('name')}: resources.{kind}.memory: {err}") from None
        if grown > quantity.MAX_VALUE:
            raise Denied(f"container {container.get('name')}: resources.{kind}.memory plus the model's size "
                         "is larger than Kubernetes allows; lower the memory or the model's size")
        resources[kind]["memory"] = quantity.exact(grown)
