"""The mark of a pod the webhook changed, `model.cache/injected:
"<strategy>/<model>/<revision>"`: written by the mutation, read by the
validating half, the reinvocation and explain. Its one home."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from webhook.objects import annotations_of
from webhook.vocabulary import INJECTED


@dataclass(frozen=True)
class Marker:
    strategy: str
    model: str
    revision: str = ""

    @property
    def value(self) -> str:
        return f"{self.strategy}/{self.model}/{self.revision}"


def is_marked(pod: Mapping[str, Any]) -> bool:
    """POD carries the annotation, readable or not (a pod we changed is never changed again)."""
    return INJECTED in annotations_of(pod)


def read(pod: Mapping[str, Any]) -> Marker | None:
    """The marker of POD; None when it has none, or one that names no strategy and model."""
    value = annotations_of(pod).get(INJECTED)
    if not value or not isinstance(value, str):
        return None
    parts = value.split("/")
    if len(parts) < 2 or not parts[0]:
        return None
    return Marker(parts[0], parts[1], parts[2] if len(parts) > 2 else "")


def write(pod: dict[str, Any], marker: Marker) -> None:
    """Marks POD (a plain dict being built by the mutation)."""
    pod.setdefault("metadata", {}).setdefault("annotations", {})[INJECTED] = marker.value
