"""The cluster facts the rules read: what the lookups found, or that an object
is missing, or that it could not be had (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Literal, Mapping, Protocol

from webhook import quantity


Kind = Literal["pvc", "secret", "namespace", "limits"]


@dataclass(frozen=True)
class LookupKey:
    kind: Kind
    namespace: str  # for kind "namespace": the namespace itself
    name: str  # for kind "limits": the namespace (its LimitRanges and ResourceQuotas, listed)


def namespace_key(namespace: str) -> LookupKey:
    """The lookup of NAMESPACE itself (its labels: the Pod Security level it enforces)."""
    return LookupKey("namespace", namespace, namespace)


class FactsSource(Protocol):
    """Where the facts come from (validate.lookups.FactsProvider in the server)."""

    def gather(self, keys: Iterable[LookupKey]) -> dict[LookupKey, Any]: ...


@dataclass(frozen=True)
class PvcInfo:
    name: str
    requested: Decimal | None  # spec.resources.requests.storage
    capacity: Decimal | None  # status.capacity.storage, once bound
    access_modes: tuple[str, ...]  # status.accessModes once bound, else spec.accessModes
    phase: str | None  # Pending, Bound, Lost
    deleting: bool = False  # metadata.deletionTimestamp is set


@dataclass(frozen=True)
class SecretInfo:
    """A Secret's key names only: values are never read into this object."""

    name: str
    keys: frozenset[str]


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class MemoryCap:
    """One memory bound of a namespace that admission enforces on a new pod:
    a LimitRange's max per Container or per Pod, or a ResourceQuota's hard
    `limits.memory` or `requests.memory` (`memory`) with what is used of it."""

    kind: Literal["LimitRange", "ResourceQuota"]
    name: str
    scope: str  # Container, Pod (LimitRange); limits.memory, requests.memory (ResourceQuota)
    max: Decimal
    used: Decimal = Decimal(0)


@dataclass(frozen=True)
class NamespaceLimits:
    caps: tuple[MemoryCap, ...]


class _Missing:
    """The API server answered 404."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Unavailable:
    """The fact could not be had: 403, an API error, a timeout."""

    reason: str
    forbidden: str | None = None  # the resource RBAC denied (persistentvolumeclaims, ...)
    verb: str = "get"  # what RBAC must grant on it




@dataclass(frozen=True)
class ClusterFacts:
    pvc: PvcInfo | _Missing | Unavailable | None = None
    secret: SecretInfo | _Missing | Unavailable | None = None
    namespace: NamespaceInfo | _Missing | Unavailable | None = None
    limits: NamespaceLimits | Unavailable | None = None


# --- JSON from the API server -> facts --------------------------------------------


def _quantity(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return quantity.parse(value)
    except ValueError:
        return None


def pvc_from_json(obj: Mapping[str, Any]) -> PvcInfo:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    bound_modes = status.get("accessModes") or []
    return PvcInfo(
        name=meta.get("name", ""),
        requested=_quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage")),
        capacity=_quantity((status.get("capacity") or {}).get("storage")),
        access_modes=tuple(bound_modes or spec.get("accessModes") or ()),
        phase=status.get("phase"),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def secret_from_json(obj: Mapping[str, Any]) -> SecretInfo:
    # Only the key names leave this function; the caller drops OBJ (values included).
    return SecretInfo(name=(obj.get("metadata") or {}).get("name", ""), keys=frozenset(obj.get("data") or {}))


def namespace_from_json(obj: Mapping[str, Any]) -> NamespaceInfo:
    meta = obj.get("metadata") or {}
    return NamespaceInfo(name=meta.get("name", ""), labels=dict(meta.get("labels") or {}))


_QUOTA_MEMORY = {"limits.memory": "limits.memory", "requests.memory": "requests.memory", "memory": "requests.memory"}


def limits_from_json(limit_ranges: Mapping[str, Any], quotas: Mapping[str, Any]) -> NamespaceLimits:
    """The memory bounds in two list answers (LimitRangeList, ResourceQuotaList).
    A quota with scopes or a scopeSelector is left out: whether it counts a
    pod depends on the pod's priority class or deadline, not checked here."""
    caps: list[MemoryCap] = []
    for item in limit_ranges.get("items") or []:
        name = (item.get("metadata") or {}).get("name", "")
        for limit in (item.get("spec") or {}).get("limits") or []:
            top = _quantity((limit.get("max") or {}).get("memory"))
            if limit.get("type") in ("Container", "Pod") and top is not None:
                caps.append(MemoryCap("LimitRange", name, limit["type"], top))
    for item in quotas.get("items") or []:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        if spec.get("scopes") or spec.get("scopeSelector"):
            continue
        name = (item.get("metadata") or {}).get("name", "")
        for key, scope in _QUOTA_MEMORY.items():
            hard = _quantity((spec.get("hard") or {}).get(key))
            if hard is not None:
                used = _quantity((status.get("used") or {}).get(key)) or Decimal(0)
                caps.append(MemoryCap("ResourceQuota", name, scope, hard, used))
    return NamespaceLimits(tuple(caps))
