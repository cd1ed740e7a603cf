"""A pod's `model.cache/*` annotations parsed into one request, or a clear error
(AnnotationError, which denies the pod)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from webhook import quantity
from webhook.errors import AnnotationError, QuantityError
from webhook.policy.schema import is_valid_model_name
from webhook.strategies import names as strategy_names
from webhook.vocabulary import (CONTAINERS, INJECTED, INPUTS, MOUNT_PATH, NAME, PREFIX, PRELOAD, SHM_SIZE, STRATEGY,
                                 did_you_mean)


@dataclass(frozen=True)
class InjectionRequest:
    """What the pod author asked for; None means "use the policy's"."""

    model: str
    strategy: str | None = None
    mount_path: str | None = None
    containers: tuple[str, ...] | None = None
    preload: bool = True
    shm_size: str | None = None


def _strategy(value: str) -> str:
    v = value.strip()
    if v not in strategy_names():
        raise AnnotationError(f'{STRATEGY}: "{value}" is not a strategy; use one of {", ".join(strategy_names())}')
    return v


def _mount_path(value: str) -> str:
    v = value.strip()
    if not v.startswith("/") or any(p == ".." for p in v.split("/")) or ":" in v:
        raise AnnotationError(f'{MOUNT_PATH}: "{value}" must be an absolute path without "..", such as /models')
    v = v.rstrip("/")
    if v in ("", "/dev/shm", "/dev", "/proc", "/sys", "/etc", "/usr", "/bin", "/lib", "/var/run/secrets"):
        raise AnnotationError(f'{MOUNT_PATH}: "{value}" would hide a system directory; use a path such as /models')
    return v


def _containers(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise AnnotationError(f'{CONTAINERS}: "{value}" names no container; give comma-separated container names')
    return names


def _preload(value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise AnnotationError(f'{PRELOAD}: "{value}" must be "true" or "false"')
    return v == "true"


def _shm_size(value: str) -> str:
    v = value.strip()
    try:
        quantity.parse(v)
    except QuantityError as err:
        raise AnnotationError(f'{SHM_SIZE}: {err}; or "0" for no /dev/shm') from None
    return v


def parse(annotations: Mapping[str, str] | None) -> InjectionRequest | None:
    """The request the annotations make; None when the pod does not ask for a model."""
    annotations = annotations or {}
    model = annotations.get(NAME)
    if model is None:
        return None
    model = model.strip()
    if not is_valid_model_name(model):
        raise AnnotationError(f'{NAME}: "{model}" is not a model name; use the key of a model in the policy, e.g. llama-3-8b')
    # A typo such as model.cache/stratgy would otherwise be ignored in silence.
    unknown = sorted(k for k in annotations if k.startswith(PREFIX) and k not in INPUTS and k != INJECTED)
    if unknown:
        guesses = [f"{key} (did you mean {guess}?)" if (guess := did_you_mean(key)) else key for key in unknown]
        raise AnnotationError(
            f"unknown annotation {', '.join(guesses)}; model-cache reads {', '.join(INPUTS)}"
        )

    def value(key: str, convert):  # type: ignore[no-untyped-def]
        raw = annotations.get(key)
        return None if raw is None else convert(raw)

    preload = value(PRELOAD, _preload)
    return InjectionRequest(
        model=model,
        strategy=value(STRATEGY, _strategy),
        mount_path=value(MOUNT_PATH, _mount_path),
        containers=value(CONTAINERS, _containers),
        preload=True if preload is None else preload,
        shm_size=value(SHM_SIZE, _shm_size),
    )
