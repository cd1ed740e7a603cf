"""Whether an injected pod still holds what the mutation made, after later
mutating webhooks changed it: the checks /mutate makes when the API server
calls it again (reinvocationPolicy: IfNeeded) and /validate makes on a bare
pod. Pure.

What a later webhook can break: our volume removed or its source replaced,
every mount of it removed, a mount of it moved, made writable or pointed at
another subPath, another volume mounted at the model's path, the init
container that fills a memory or oci volume removed. Each is denied: the
pod would start without its model (or with a writable one), and a repair
could not stick, since the API server calls each webhook again at most once
and the one that broke it may run after our repair.
"""

from __future__ import annotations

from typing import Any, Mapping

from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.objects import annotations_of
from webhook.strategies import REGISTRY
from webhook.validate.rules import denial_for
from webhook.vocabulary import INJECTED, MOUNT_PATH, VOLUME

_FIX = "recreate the pod or fix the other webhook"  # as rules.denial_for says it


def broken_injection(pod: Mapping[str, Any], model: ModelView, use: CacheUse) -> str | None:
    """The denial for POD (described as USE, its model MODEL) when a later
    webhook broke what the mutation made, else None."""
    denial = denial_for(use)
    if denial is not None or not use.final:
        return denial
    strategy = REGISTRY.get(use.strategy)
    if strategy is None:  # a marker of a strategy this version does not know: nothing to compare with
        return None
    marker = f"{INJECTED}={use.strategy}/{use.model}"
    expected = strategy.volume(model)
    if not _same_source(use.volume, expected):
        source = ", ".join(k for k in use.volume if k != "name") or "none"
        return (f"pod is marked {marker} but volume {VOLUME} was changed after model-cache injected it "
                f"(its source is {source}, not {', '.join(expected)}): the model is not there; {_FIX}")
    mount_path = (annotations_of(pod).get(MOUNT_PATH) or "").strip().rstrip("/") or model.defaults.mountPath
    sub_path = strategy.sub_path(model) or ""
    for container in use.serving:
        name = container.get("name", "?")
        for mount in container.get("volumeMounts") or []:
            path = str(mount.get("mountPath", "")).rstrip("/")
            if mount.get("name") == VOLUME:
                changed = _mount_change(mount, path, mount_path, sub_path)
                if changed:
                    return (f"pod is marked {marker} but container {name} mounts volume {VOLUME} {changed} "
                            f"(changed by a later webhook?); {_FIX}")
            elif path == mount_path:
                return (f"container {name} mounts volume {mount.get('name')} at {mount_path}, where model-cache "
                        f"mounted model {use.model} (added by a later webhook?): one would hide the other; {_FIX}")
    return None


def _same_source(volume: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """The volume has the source the strategy gives, pointing at the same
    thing. Quantities (sizeLimit) are left out: the API server may write them
    in another form after a later webhook's patch."""
    if {k for k in volume if k != "name"} != set(expected):
        return False
    for kind, fields in expected.items():
        actual = volume.get(kind) or {}
        if any(actual.get(key) != value for key, value in fields.items() if key != "sizeLimit"):
            return False
    return True


def _mount_change(mount: Mapping[str, Any], path: str, mount_path: str, sub_path: str) -> str | None:
    if path != mount_path:
        return f"at {path or '(no path)'}, not at {mount_path}"
    if mount.get("readOnly") is not True:
        return f"writable at {mount_path}, not read-only"
    if (mount.get("subPath") or "") != sub_path:
        return f"with subPath {mount.get('subPath') or '(none)'}, not {sub_path or '(none)'}"
    return None
