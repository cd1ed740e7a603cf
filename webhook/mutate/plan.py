"""The plan: what to inject, decided from the pod author's request and the
namespace's policy, or Denied naming the fix. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook import strategies
from webhook.errors import Denied
from webhook.facts import marker
from webhook.facts.marker import Marker
from webhook.mutate.annotations import InjectionRequest
from webhook.policy import ResolvedModel
from webhook.strategies.base import Strategy
from webhook.vocabulary import INJECTED_CONTAINERS, STRATEGY


Pod = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What to inject, decided from the request and the policy."""

    model: ResolvedModel
    strategy: Strategy
    mount_path: str
    targets: tuple[str, ...]
    preload: bool
    shm_size: str

    @property
    def marker(self) -> Marker:
        return Marker(self.strategy.name, self.model.name, self.model.revision)


def already_injected(pod: Pod) -> bool:
    """A pod we changed before (our annotation or our init container) is left alone,
    also when another webhook reinvokes us."""
    if marker.is_marked(pod):
        return True
    names = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []}
    return not names.isdisjoint(INJECTED_CONTAINERS)


def make_plan(pod: Pod, request: InjectionRequest, model: ResolvedModel) -> Plan:
    """Checks the request against the policy and the pod's containers; Denied names the fix.
    Clashes with the pod's volumes and mounts are checked by `mutate`."""
    d = model.defaults
    strategy = request.strategy or model.strategy
    if strategy not in d.allowedStrategies:
        origin = STRATEGY if request.strategy else f"the policy's strategy for {model.name}"
        raise Denied(
            f'strategy "{strategy}" ({origin}) is not allowed in namespace {model.namespace}; '
            f"allowed: {', '.join(d.allowedStrategies)}. Set model.cache/strategy to one of them"
        )
    unusable = strategies.unusable(strategy, model)
    if unusable is not None:
        raise Denied(f"model {model.name}: {unusable} (model.cache/strategy)")
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    names = [c.get("name") for c in containers]
    targets = request.containers or tuple(names)
    missing = [t for t in targets if t not in names]
    if missing:
        raise Denied(
            f"model.cache/containers names {', '.join(missing)}, not in this pod; "
            f"its containers are {', '.join(str(n) for n in names)}"
        )
    mount_path = request.mount_path or d.mountPath
    return Plan(
        model=model,
        strategy=strategies.get(strategy),
        mount_path=mount_path,
        targets=tuple(targets),
        preload=request.preload and strategies.get(strategy).downloads,
        shm_size=request.shm_size if request.shm_size is not None else d.shmSize,
    )


