"""The pure mutation: pod + request + resolved model -> mutated pod.

The pod is the plain dict the API server sent; nothing here round-trips it
through model classes, so fields this code does not know survive untouched.
Everything is added; only memory quantities are replaced (strategy `memory`).
What differs by strategy is asked of its module in webhook/strategies/.
"""

from __future__ import annotations

from typing import Any, Protocol

from webhook import quantity
from webhook.errors import Denied
from webhook.facts import marker
from webhook.mutate import annotations
from webhook.mutate.annotations import InjectionRequest
from webhook.mutate.containers import downloader, dragonfly_volume, no_token_volume, oci_copy
from webhook.mutate.plan import Plan, Pod, already_injected, make_plan
from webhook.objects import annotations_of
from webhook.policy import ResolvedModel
from webhook.vocabulary import (CACHE_PATH_ENV, DRAGONFLY_VOLUME, INJECTED_CONTAINERS, MIRROR, NO_TOKEN_VOLUME, SHM_PATH,
                                SHM_VOLUME, VOLUME)


class ModelResolver(Protocol):
    def resolve(self, namespace: str, model: str) -> ResolvedModel: ...


def _copy_json(value: Any) -> Any:
    # A pod is plain dicts, lists and scalars: this is several times faster than
    # copy.deepcopy, which keeps a memo for cycles a pod cannot have.
    if type(value) is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy_json(v) for v in value]
    return value


def apply_plan(pod: Pod, plan: Plan) -> Pod:
    """A new pod with the plan applied; the input is not modified."""
    pod = _copy_json(pod)
    spec = pod.setdefault("spec", {})
    model = plan.model
    strategy = plan.strategy

    volumes = spec.setdefault("volumes", [])
    volumes.append(_model_volume(plan))

    injected: list[dict[str, Any]] = []
    if plan.preload:
        injected += strategy.give_write_access(spec, model)
        injected.append(downloader(plan))
    elif strategy.copies:
        injected.append(oci_copy(plan))
    if injected:
        volumes.append(no_token_volume())
        p2p = dragonfly_volume(plan)
        if p2p is not None:
            volumes.append(p2p)
        init_containers = spec.setdefault("initContainers", [])
        position = _init_position(init_containers)
        init_containers[position:position] = injected

    strategy.place(spec, model)

    if strategy.oci_source and model.spec.authSecretName:
        pull_secrets = spec.setdefault("imagePullSecrets", [])
        if {"name": model.spec.authSecretName} not in pull_secrets:
            pull_secrets.append({"name": model.spec.authSecretName})

    add_shm = quantity.parse(plan.shm_size) > 0 and not any(
        m.get("mountPath", "").rstrip("/") == SHM_PATH
        for c in spec.get("containers") or []
        for m in c.get("volumeMounts") or []
    )
    if add_shm:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": plan.shm_size}})

    mount: dict[str, Any] = {"name": VOLUME, "mountPath": plan.mount_path, "readOnly": True}
    sub_path = strategy.sub_path(model)
    if sub_path:
        mount["subPath"] = sub_path
    env = [{"name": k, "value": v} for k, v in model.defaults.env.items()]
    env.append({"name": CACHE_PATH_ENV, "value": plan.mount_path})

    first = True
    for container in spec.get("containers") or []:
        if container.get("name") not in plan.targets:
            continue
        mounts = container.setdefault("volumeMounts", [])
        mounts.append(dict(mount))
        if add_shm:
            mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
        _add_env(container, env)
        if first:
            strategy.grow_serving(container, model)
        first = False

    marker.write(pod, plan.marker)
    return pod


# --- the pieces ------------------------------------------------------------


def _model_volume(plan: Plan) -> dict[str, Any]:
    return {"name": VOLUME, **plan.strategy.volume(plan.model)}


def _init_position(init_containers: list[dict[str, Any]]) -> int:
    """After the last native sidecar, so a mesh proxy is up before the download;
    before the pod's own init containers that follow it."""
    position = 0
    for i, c in enumerate(init_containers):
        if c.get("restartPolicy") == "Always":
            position = i + 1
    return position


def after_native_sidecars(pod: Pod) -> Pod | None:
    """For a pod injected already whose init containers a later webhook has
    changed since (reinvocationPolicy: IfNeeded calls us again): a new pod with
    ours moved back to where apply_plan puts them, after the last native
    sidecar, so that a sidecar appended after them (a mesh proxy) is up before
    the download. None when they are in place."""
    inits = (pod.get("spec") or {}).get("initContainers") or []
    ours = [c for c in inits if c.get("name") in INJECTED_CONTAINERS]
    if not ours:
        return None
    rest = [c for c in inits if c.get("name") not in INJECTED_CONTAINERS]
    position = _init_position(rest)
    ordered = rest[:position] + ours + rest[position:]
    if all(a is b for a, b in zip(ordered, inits)):
        return None
    moved = _copy_json(pod)
    moved["spec"]["initContainers"] = _copy_json(ordered)
    return moved


def _add_env(container: dict[str, Any], env: list[dict[str, Any]]) -> None:
    current = container.setdefault("env", [])
    # The pod author's own value wins: we add, never override.
    taken = {e.get("name") for e in current}
    current.extend(dict(e) for e in env if e["name"] not in taken)


def _volume_clash(name: str) -> Denied:
    return Denied(
        f'the pod already has a volume named "{name}", which model-cache injects; '
        "rename that volume, or remove the model.cache/name annotation"
    )


def mutate(pod: Pod, request: InjectionRequest, model: ResolvedModel) -> tuple[Pod | None, Plan]:
    """The whole pure mutation: the plan (or Denied) and the pod it gives; None
    for the pod when it already carries exactly the volume we would add (ours,
    from an earlier pass whose annotation was lost)."""
    plan = make_plan(pod, request, model)
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    if VOLUME in volumes:
        if volumes[VOLUME] == _model_volume(plan):
            return None, plan
        raise _volume_clash(VOLUME)
    for name in (SHM_VOLUME, NO_TOKEN_VOLUME, DRAGONFLY_VOLUME):
        if name in volumes:
            raise _volume_clash(name)
    _check_container_names(pod)
    _check_mount_paths(pod, plan)
    return apply_plan(pod, plan), plan


def _check_container_names(pod: Pod) -> None:
    """Container names are unique across a pod's containers, init and ephemeral
    containers: the API server would refuse a pod with a second one of ours."""
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if container.get("name") in INJECTED_CONTAINERS:
                raise Denied(
                    f'the pod already has a container named "{container["name"]}" in {key}, a name model-cache '
                    "injects; rename that container, or remove the model.cache/name annotation"
                )


def _check_mount_paths(pod: Pod, plan: Plan) -> None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") not in plan.targets:
            continue
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") == plan.mount_path:
                raise Denied(
                    f'container {container["name"]} already mounts {mount.get("name")} at {plan.mount_path}; '
                    "set model.cache/mount-path to a free path, or remove that mount"
                )


def mutate_pod(pod: Pod, namespace: str, policies: ModelResolver) -> tuple[Pod | None, Plan | None]:
    """The whole decision for one pod, as /mutate, /validate and `inject -f`
    make it: the mutated pod and its plan, (None, None) when the pod is left
    as it is (no trigger, a mirror pod, injected already). Raises Denied."""
    pod_annotations = annotations_of(pod)
    if MIRROR in pod_annotations or already_injected(pod):
        return None, None
    request = annotations.parse(pod_annotations)
    if request is None:
        return None, None
    model = policies.resolve(namespace, request.model)
    mutated, plan = mutate(pod, request, model)
    return (mutated, plan) if mutated is not None else (None, None)
