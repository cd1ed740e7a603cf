"""A policy's defaults merged over the built-in ones, and a model as one
namespace sees it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from webhook import quantity
from webhook.download.archive.unpack import volume_size_needed
from webhook.policy.schema import EffectiveDefaults, ModelSpec, PolicyDefaults
from webhook.strategies import names as strategy_names, with_settings
from webhook.vocabulary import DEFAULT_IMAGE, DEFAULT_UID

BUILTIN_DEFAULTS: dict[str, Any] = {
    "strategy": "pvc",
    "allowedStrategies": list(strategy_names()),
    "mountPath": "/model-cache",
    "shmSize": "1Gi",
    "downloader": {
        "image": DEFAULT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "env": {},
        "runAsUser": DEFAULT_UID,
    },
    "env": {},
    "pvcHeadroomPercent": 20.0,
    # Each strategy's own section, as the strategy declares it.
    **{s.settings_key: dict(s.builtin_settings) for s in with_settings()},
}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def builtin_defaults(downloader_image: str | None = None) -> dict[str, Any]:
    """The built-in defaults; DOWNLOADER_IMAGE (the webhook's own image, where it
    was installed from a private registry) replaces the downloader's image."""
    if not downloader_image:
        return BUILTIN_DEFAULTS
    return _deep_merge(BUILTIN_DEFAULTS, {"downloader": {"image": downloader_image}})


def merge_defaults(*layers: PolicyDefaults | None, base: dict[str, Any] = BUILTIN_DEFAULTS) -> EffectiveDefaults:
    """BASE (the built-in defaults), then each layer's fields over them, most general first."""
    merged = base
    for layer in layers:
        if layer is not None:
            merged = _deep_merge(merged, layer.model_dump(exclude_none=True))
    return EffectiveDefaults.model_validate(merged)


@dataclass(frozen=True)
class ResolvedModel:
    """A model as one namespace sees it: its spec and the merged defaults."""

    name: str
    namespace: str
    spec: ModelSpec
    defaults: EffectiveDefaults
    policy_file: str

    @property
    def revision(self) -> str:
        return self.spec.revision or "main"

    @property
    def has_revisions(self) -> bool:
        """Only the Hub has revisions; any other source is read as it is, and
        "main" is then no more than the name of its cache directory."""
        return self.spec.source.lower().startswith("hf://")

    @property
    def size_bytes(self) -> Decimal:
        return quantity.parse(self.spec.size)

    @property
    def volume_bytes(self) -> Decimal:
        """What the download needs on its volume: the model, or more while an
        archive that cannot stream (zip) sits beside its contents."""
        return Decimal(volume_size_needed(int(self.size_bytes), self.spec.source))

    @property
    def strategy(self) -> str:
        return self.spec.strategy or self.defaults.strategy

    @property
    def cache_subpath(self) -> str:
        return f"{self.name}/{self.revision}"


