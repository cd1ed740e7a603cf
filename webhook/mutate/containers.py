"""The containers a mutation injects: the downloader, the OCI copy and the
hostpath directory's preparation. Pure."""

from __future__ import annotations

from typing import Any

from webhook.download.command import arguments as download_arguments
from webhook.mutate.plan import Plan
from webhook.strategies import get as strategy_named
from webhook.strategies.images import image_reference
from webhook.vocabulary import (CREDENTIAL_KEYS, DEFAULT_UID, DOWNLOADER, NO_TOKEN_VOLUME, OCI_COPY, PREPARE, TOKEN_PATH, VOLUME,
                                 VOLUME_ROOT)

# What every injected init container mounts: the model volume whole, and
# nothing at the token path.
_MOUNTS = ({"name": VOLUME, "mountPath": VOLUME_ROOT}, {"name": NO_TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True})


def no_token_volume() -> dict[str, Any]:
    """The volume behind the injected init containers' token path: empty, and small."""
    return {"name": NO_TOKEN_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}


def downloader_group(plan: Plan) -> int:
    """The downloader's uid and gid (they are the same)."""
    return plan.model.defaults.downloader.runAsUser or DEFAULT_UID


def restricted_security_context(run_as_user: int | None) -> dict[str, Any]:
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


def downloader(plan: Plan) -> dict[str, Any]:
    model = plan.model
    spec, d = model.spec, model.defaults.downloader
    args = download_arguments(spec.source, f"{VOLUME_ROOT}/{model.cache_subpath}", spec.revision, spec.sha256,
                              spec.include)

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
        "volumeMounts": [dict(m) for m in _MOUNTS],
        "securityContext": restricted_security_context(d.runAsUser),
    }
    if d.resources is not None:
        container["resources"] = d.resources.model_dump(exclude_none=True)
        strategy_named(plan.strategy).grow_downloader(container, model)
    return container


def oci_copy(plan: Plan) -> dict[str, Any]:
    spec, d = plan.model.spec, plan.model.defaults.downloader
    source_dir = (spec.ociPath or "/models").rstrip("/") or "/"
    container: dict[str, Any] = {
        "name": OCI_COPY,
        "image": image_reference(spec.source),
        "imagePullPolicy": "IfNotPresent",
        # cp is in every modelcar base image (busybox, distroless/base-debug, ubi-micro).
        "command": ["cp", "-R", f"{source_dir}/.", f"{VOLUME_ROOT}/"],
        "volumeMounts": [dict(m) for m in _MOUNTS],
        "securityContext": restricted_security_context(d.runAsUser),
    }
    if d.resources is not None:
        container["resources"] = d.resources.model_dump(exclude_none=True)
    return container


def prepare(plan: Plan) -> dict[str, Any]:
    """Makes the model's directory on the node (`<root>/<model>`, where the
    downloader keeps its lock and partial download) the downloader's, 0755.
    Root, because the kubelet created the hostPath root-owned; with no
    capability but CHOWN and FOWNER, and touching nothing but that directory.
    `install` is coreutils', in the downloader's image."""
    d = plan.model.defaults.downloader
    uid = str(downloader_group(plan))
    container: dict[str, Any] = {
        "name": PREPARE,
        "image": d.image,
        "imagePullPolicy": d.imagePullPolicy,
        "command": ["install", "-d", "-o", uid, "-g", uid, "-m", "0755", f"{VOLUME_ROOT}/{plan.model.name}"],
        "volumeMounts": [dict(m) for m in _MOUNTS],
        "securityContext": {
            "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if d.resources is not None:
        container["resources"] = d.resources.model_dump(exclude_none=True)
    return container
