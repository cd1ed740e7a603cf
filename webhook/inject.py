"""The pure mutation: pod + request + resolved model -> mutated pod.

The pod is the plain dict the API server sent; nothing here round-trips it
through model classes, so fields this code does not know survive untouched.
Everything is added; only memory quantities are replaced (strategy `memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import format_quantity, parse_quantity

from webhook import annotations as ann
from webhook.annotations import InjectionRequest
from webhook.errors import Denied
from webhook.policy import OCI_STRATEGIES, ResolvedModel

Pod = dict[str, Any]

VOLUME = "model-cache"
SHM_VOLUME = "model-cache-shm"
DOWNLOADER = "model-cache-download"
OCI_COPY = "model-cache-oci-copy"
# Where the downloader and the OCI copy see the whole volume.
VOLUME_ROOT = "/model-cache"
SHM_PATH = "/dev/shm"
CACHE_PATH_ENV = "MODEL_CACHE_PATH"

# Secret keys the downloader reads, by source scheme; optional ones may be absent.
CREDENTIAL_KEYS: dict[str, tuple[tuple[str, bool], ...]] = {
    "hf": (("HF_TOKEN", False),),
    "s3": (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_SESSION_TOKEN", True)),
    "http": (("MODEL_CACHE_HTTP_TOKEN", False),),
    "https": (("MODEL_CACHE_HTTP_TOKEN", False),),
}


@dataclass(frozen=True)
class Plan:
    """What to inject, decided from the request and the policy."""

    model: ResolvedModel
    strategy: str
    mount_path: str
    targets: tuple[str, ...]
    preload: bool
    shm_size: str

    @property
    def marker(self) -> str:
        return f"{self.strategy}/{self.model.name}/{self.model.revision}"


def already_injected(pod: Pod) -> bool:
    """A pod we changed before (our annotation or our init container) is left alone,
    also when another webhook reinvokes us."""
    metadata = pod.get("metadata") or {}
    if ann.INJECTED in (metadata.get("annotations") or {}):
        return True
    names = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []}
    return DOWNLOADER in names or OCI_COPY in names


def make_plan(pod: Pod, request: InjectionRequest, model: ResolvedModel) -> Plan:
    """Checks the request against the policy and the pod's containers; Denied names the fix.
    Clashes with the pod's volumes and mounts are checked by `mutate`."""
    d = model.defaults
    strategy = request.strategy or model.strategy
    if strategy not in d.allowedStrategies:
        origin = "model.cache/strategy" if request.strategy else f"the policy's strategy for {model.name}"
        raise Denied(
            f'strategy "{strategy}" ({origin}) is not allowed in namespace {model.namespace}; '
            f"allowed: {', '.join(d.allowedStrategies)}. Set model.cache/strategy to one of them"
        )
    if (strategy in OCI_STRATEGIES) != model.spec.is_oci:
        need = "oci or image" if model.spec.is_oci else "pvc, hostpath or memory"
        raise Denied(
            f'model {model.name} comes from {model.spec.source.split("://")[0]}://, which strategy "{strategy}" '
            f"cannot serve; set model.cache/strategy to {need}"
        )
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
        strategy=strategy,
        mount_path=mount_path,
        targets=tuple(targets),
        preload=request.preload and strategy not in OCI_STRATEGIES,
        shm_size=request.shm_size if request.shm_size is not None else d.shmSize,
    )


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
    metadata = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    model = plan.model

    volumes = spec.setdefault("volumes", [])
    volumes.append(_model_volume(plan))

    init_container = None
    if plan.preload:
        init_container = _downloader(plan)
    elif plan.strategy == "oci":
        init_container = _oci_copy(plan)
    if init_container is not None:
        init_containers = spec.setdefault("initContainers", [])
        init_containers.insert(_init_position(init_containers), init_container)

    if plan.strategy in OCI_STRATEGIES and model.spec.authSecretName:
        pull_secrets = spec.setdefault("imagePullSecrets", [])
        if {"name": model.spec.authSecretName} not in pull_secrets:
            pull_secrets.append({"name": model.spec.authSecretName})

    add_shm = parse_quantity(plan.shm_size) > 0 and not any(
        m.get("mountPath", "").rstrip("/") == SHM_PATH
        for c in spec.get("containers") or []
        for m in c.get("volumeMounts") or []
    )
    if add_shm:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": plan.shm_size}})

    mount: dict[str, Any] = {"name": VOLUME, "mountPath": plan.mount_path, "readOnly": True}
    sub_path = _serving_sub_path(plan)
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
        if plan.strategy == "memory" and first:
            # The tmpfs pages are charged to the pod: without this the server is OOM-killed
            # as soon as it maps the weights.
            _grow_memory(container, model.size_bytes, ("requests", "limits"))
        first = False

    metadata.setdefault("annotations", {})[ann.INJECTED] = plan.marker
    return pod


# --- the pieces ------------------------------------------------------------


def _model_volume(plan: Plan) -> dict[str, Any]:
    d, spec = plan.model.defaults, plan.model.spec
    if plan.strategy == "pvc":
        return {"name": VOLUME, "persistentVolumeClaim": {"claimName": d.pvc.claimName}}
    if plan.strategy == "hostpath":
        return {"name": VOLUME, "hostPath": {"path": d.hostPath.path, "type": "DirectoryOrCreate"}}
    if plan.strategy == "memory":
        return {"name": VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": spec.size}}
    if plan.strategy == "oci":
        return {"name": VOLUME, "emptyDir": {"sizeLimit": spec.size}}
    return {"name": VOLUME, "image": {"reference": _image_reference(spec.source), "pullPolicy": "IfNotPresent"}}


def _serving_sub_path(plan: Plan) -> str | None:
    if plan.strategy in ("pvc", "hostpath", "memory"):
        return plan.model.cache_subpath
    if plan.strategy == "image":
        # An image volume shows the whole image filesystem; the model is under ociPath.
        return (plan.model.spec.ociPath or "").strip("/") or None
    return None


def _image_reference(source: str) -> str:
    return source.removeprefix("oci://")


def _restricted_security_context(run_as_user: int | None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
        context["runAsGroup"] = run_as_user
    return context


def _downloader(plan: Plan) -> dict[str, Any]:
    model = plan.model
    spec, d = model.spec, model.defaults.downloader
    args = ["download", "--source", spec.source, "--dest", f"{VOLUME_ROOT}/{model.cache_subpath}"]
    if spec.revision:
        args += ["--revision", spec.revision]
    if spec.sha256:
        args += ["--sha256", spec.sha256]
    if spec.include:
        args += ["--include", *spec.include]

    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if spec.authSecretName:
        env.append({"name": "MODEL_CACHE_AUTH_SECRET", "value": spec.authSecretName})
        scheme = spec.source.split("://", 1)[0]
        for key, optional in CREDENTIAL_KEYS.get(scheme, ()):
            ref: dict[str, Any] = {"name": spec.authSecretName, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    env += [{"name": k, "value": v} for k, v in (d.env or {}).items()]

    container: dict[str, Any] = {
        "name": DOWNLOADER,
        "image": d.image,
        "imagePullPolicy": d.imagePullPolicy,
        "command": ["model-cache"],
        "args": args,
        "env": env,
        "volumeMounts": [{"name": VOLUME, "mountPath": VOLUME_ROOT}],
        "securityContext": _restricted_security_context(d.runAsUser),
    }
    if d.resources is not None:
        container["resources"] = d.resources.model_dump(exclude_none=True)
        if plan.strategy == "memory":
            # The downloader writes the model into tmpfs: its memory limit must hold it.
            _grow_memory(container, model.size_bytes, ("limits",))
    return container


def _oci_copy(plan: Plan) -> dict[str, Any]:
    spec, d = plan.model.spec, plan.model.defaults.downloader
    source_dir = (spec.ociPath or "/models").rstrip("/") or "/"
    container: dict[str, Any] = {
        "name": OCI_COPY,
        "image": _image_reference(spec.source),
        "imagePullPolicy": "IfNotPresent",
        # cp is in every modelcar base image (busybox, distroless/base-debug, ubi-micro).
        "command": ["cp", "-R", f"{source_dir}/.", f"{VOLUME_ROOT}/"],
        "volumeMounts": [{"name": VOLUME, "mountPath": VOLUME_ROOT}],
        "securityContext": _restricted_security_context(d.runAsUser),
    }
    if d.resources is not None:
        container["resources"] = d.resources.model_dump(exclude_none=True)
    return container


def _init_position(init_containers: list[dict[str, Any]]) -> int:
    """After the last native sidecar, so a mesh proxy is up before the download;
    before the pod's own init containers that follow it."""
    position = 0
    for i, c in enumerate(init_containers):
        if c.get("restartPolicy") == "Always":
            position = i + 1
    return position


def _add_env(container: dict[str, Any], env: list[dict[str, Any]]) -> None:
    current = container.setdefault("env", [])
    # The pod author's own value wins: we add, never override.
    taken = {e.get("name") for e in current}
    current.extend(dict(e) for e in env if e["name"] not in taken)


def format_bytes(value: Decimal) -> str:
    """A byte count in the largest binary suffix that keeps it whole (16Gi, 1536Mi)."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = parse_quantity("1" + suffix)
        if value >= unit and value % unit == 0:
            return format_quantity(value, suffix)
    return str(int(value))


def _grow_memory(container: dict[str, Any], size: Decimal, kinds: tuple[str, ...]) -> None:
    resources = container.get("resources") or {}
    for kind in kinds:
        current = (resources.get(kind) or {}).get("memory")
        if current is not None:
            resources[kind]["memory"] = format_bytes(parse_quantity(current) + size)


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
    if SHM_VOLUME in volumes:
        raise _volume_clash(SHM_VOLUME)
    _check_mount_paths(pod, plan)
    return apply_plan(pod, plan), plan


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
