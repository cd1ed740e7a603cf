"""What a pod does with the model cache, read from the pod the mutation gave."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from webhook.download.uri import scheme_of
from webhook.facts import marker
from webhook.facts.model import ModelView
from webhook.vocabulary import DOWNLOADER, INJECTED_CONTAINERS, OCI_COPY, VOLUME, required_credential_keys


@dataclass(frozen=True)
class CacheUse:
    """A pod's use of the model cache, read from the pod the mutation gave
    (`final`: it carries model.cache/injected)."""

    model: str
    strategy: str
    final: bool
    namespace: str
    has_volume: bool
    volume: Mapping[str, Any]  # the model volume ({} when there is none)
    mounted_by: tuple[str, ...]  # containers of spec.containers that mount the volume
    serving: tuple[Mapping[str, Any], ...]  # the containers that get the model
    preload: bool  # a downloader init container is (or will be) there
    oci_copy: bool
    secret_name: str | None  # the authSecretName, when this pod uses it
    secret_keys: frozenset[str]  # keys of it the injected containers cannot start without
    spec: Mapping[str, Any]


def _containers(spec: Mapping[str, Any], key: str = "containers") -> list[Mapping[str, Any]]:
    return [c for c in (spec.get(key) or []) if isinstance(c, Mapping)]


def _mounts(container: Mapping[str, Any], volume: str) -> bool:
    return any(m.get("name") == volume for m in container.get("volumeMounts") or [])


def _secret_refs(spec: Mapping[str, Any], secret: str) -> tuple[bool, frozenset[str]]:
    """Whether the containers model-cache injected use SECRET, and the keys it
    must hold for them (non-optional secretKeyRefs, items of secret volumes they
    mount). The pod's own containers may read other keys of the same Secret:
    those are not the download's, and a missing one does not stop it."""
    injected = [c for c in _containers(spec, "initContainers") if c.get("name") in INJECTED_CONTAINERS]
    mounted = {m.get("name") for c in injected for m in c.get("volumeMounts") or []}
    used, keys = False, set()
    for c in injected:
        for env in c.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if ref.get("name") == secret:
                used = True
                if not ref.get("optional") and ref.get("key"):
                    keys.add(ref["key"])
        for src in c.get("envFrom") or []:
            ref = src.get("secretRef") or {}
            if ref.get("name") == secret and not ref.get("optional"):
                used = True
    for vol in spec.get("volumes") or []:
        ref = vol.get("secret") or {}
        if vol.get("name") in mounted and ref.get("secretName") == secret and not ref.get("optional"):
            used = True
            keys.update(i["key"] for i in ref.get("items") or [] if i.get("key"))
    return used, frozenset(keys)


def describe(pod: Mapping[str, Any], model: ModelView, namespace: str) -> CacheUse:
    """What POD, as the mutation gave it (it carries model.cache/injected), does
    with MODEL's cache. A pod whose marker is unreadable counts as not injected."""
    spec = pod.get("spec") or {}
    mark = marker.read(pod)
    containers = _containers(spec)
    inits = {c.get("name") for c in _containers(spec, "initContainers")}
    volume = next((v for v in spec.get("volumes") or [] if v.get("name") == VOLUME), None)
    mounted_by = tuple(c.get("name", "") for c in containers if _mounts(c, VOLUME))
    scheme = scheme_of(model.spec.source)
    secret = model.spec.authSecretName
    strategy = mark.strategy if mark else model.strategy
    preload = DOWNLOADER in inits
    used, keys = _secret_refs(spec, secret) if secret else (False, frozenset())
    if secret and preload and not used:
        # A downloader that carries no reference to the Secret: expect the keys its source needs.
        used, keys = True, required_credential_keys(scheme)
    return CacheUse(
        model=model.name, strategy=strategy, final=mark is not None, namespace=namespace,
        has_volume=volume is not None, volume=volume or {}, mounted_by=mounted_by,
        serving=tuple(c for c in containers if _mounts(c, VOLUME)), preload=preload, oci_copy=OCI_COPY in inits,
        secret_name=secret if used else None, secret_keys=keys, spec=spec,
    )
