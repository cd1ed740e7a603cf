"""The cluster facts the rules read: what the lookups found, or that an object
is missing, or that it could not be had (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Literal, Mapping, Protocol


Kind = Literal["pvc", "secret", "namespace"]


@dataclass(frozen=True)
class LookupKey:
    kind: Kind
    namespace: str  # for kind "namespace": the namespace itself
    name: str


class FactsSource(Protocol):
    """Where the facts come from (lookups.FactsProvider in the server)."""

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




@dataclass(frozen=True)
class ClusterFacts:
    pvc: PvcInfo | _Missing | Unavailable | None = None
    secret: SecretInfo | _Missing | Unavailable | None = None
    namespace: NamespaceInfo | _Missing | Unavailable | None = None
