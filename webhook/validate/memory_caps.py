"""The rule on a namespace's memory bounds: a LimitRange's max per container or
per pod, a ResourceQuota's memory left, against the memory limits and requests
the mutation set (the downloader's, the OCI copy's) or raised (strategy
memory: the first serving container grows by the model's size).

Why here and at apply time: the API server refuses such a pod in admission
(LimitRanger, ResourceQuota), so a Deployment's ReplicaSet fails to create its
pods, which only `kubectl describe rs` shows. Said on the template, the person
running `kubectl apply` reads the bound's name and the numbers. Pure.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from webhook import quantity
from webhook.facts.cluster import NamespaceLimits
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.vocabulary import INJECTED_CONTAINERS


MEMORY_STRATEGY = "memory"


def memory_cap_findings(use: CacheUse, model: ModelView, limits: Any) -> list[Finding]:
    """A warning for each bound of LIMITS (a NamespaceLimits; anything else:
    nothing known, nothing said) that a pod of USE exceeds."""
    if not isinstance(limits, NamespaceLimits) or not limits.caps:
        return []
    out: list[Finding] = []
    ours = _containers_we_sized(use)
    for cap in limits.caps:
        if cap.kind == "LimitRange" and cap.scope == "Container":
            for container in ours:
                limit = _memory(container, "limits")
                if limit is not None and limit > cap.max:
                    out.append(Finding("memory-limitrange", (
                        f"LimitRange {cap.name} caps container memory at {_size(cap.max)}; {container.get('name')} "
                        f"gets {_size(limit, need=True)} with model {model.name}: its pods will be refused; raise the max")))
        elif cap.kind == "LimitRange" and cap.scope == "Pod":
            total = pod_memory(use.spec, "limits")
            if total > cap.max:
                out.append(Finding("memory-limitrange", (
                    f"LimitRange {cap.name} caps pod memory at {_size(cap.max)}; a pod of model {model.name} "
                    f"has {_size(total, need=True)} in limits: it will be refused; raise the max")))
        elif cap.kind == "ResourceQuota":
            need = pod_memory(use.spec, cap.scope.split(".", 1)[0])
            left = max(Decimal(0), cap.max - cap.used)
            if need > left:
                out.append(Finding("memory-quota", (
                    f"ResourceQuota {cap.name} has {_size(left)} of {cap.scope} left; a pod of model {model.name} "
                    f"needs {_size(need, need=True)}: it will be refused; raise the quota")))
    return out


def sizes_memory(use: CacheUse) -> bool:
    """Whether the mutation set or raised a memory figure in USE's pod: only
    then are the namespace's bounds looked up."""
    return bool(_containers_we_sized(use))


def _containers_we_sized(use: CacheUse) -> list[Mapping[str, Any]]:
    inits = [c for c in use.spec.get("initContainers") or [] if isinstance(c, Mapping)]
    ours = [c for c in inits if c.get("name") in INJECTED_CONTAINERS]
    if use.strategy == MEMORY_STRATEGY and use.serving:
        ours.append(use.serving[0])
    return ours


def pod_memory(spec: Mapping[str, Any], kind: str) -> Decimal:
    """The pod's memory LIMITS or REQUESTS as admission counts them: its
    containers and native sidecars together, or an init container with the
    sidecars started before it, whichever is more. Unset counts as 0."""
    sidecars = Decimal(0)
    peak = Decimal(0)
    for c in spec.get("initContainers") or []:
        if not isinstance(c, Mapping):
            continue
        value = _memory(c, kind) or Decimal(0)
        if c.get("restartPolicy") == "Always":
            sidecars += value
        else:
            peak = max(peak, sidecars + value)
    running = sidecars + sum((_memory(c, kind) or Decimal(0) for c in spec.get("containers") or []
                              if isinstance(c, Mapping)), Decimal(0))
    return max(peak, running)


def _memory(container: Mapping[str, Any], kind: str) -> Decimal | None:
    raw = ((container.get("resources") or {}).get(kind) or {}).get("memory")
    if raw is None:
        return None
    try:
        return quantity.parse(raw)
    except ValueError:
        return None


def _size(value: Decimal, need: bool = False) -> str:
    # What a pod needs is rounded up, what a bound allows down: never "30Gi exceeds 30Gi".
    return quantity.describe(value, round_up=need)

