"""The containers a mutation injects for every strategy that fills its volume:
the downloader and the OCI copy (what a strategy adds to give the downloader
write access is its own). Pure."""

from __future__ import annotations

from typing import Any

from webhook.download.command import arguments as download_arguments
from webhook.download.uri import scheme_of
from webhook.mutate.plan import Plan
from webhook.strategies.base import give_downloader_resources, init_container_mounts
from webhook.strategies.image_source import image_reference
from webhook.vocabulary import (CREDENTIAL_KEYS, DOWNLOADER, DRAGONFLY_MOUNT, DRAGONFLY_VOLUME, NO_TOKEN_VOLUME, OCI_COPY,
                                VOLUME_ROOT)


def no_token_volume() -> dict[str, Any]:
    """The volume behind the injected init containers' token path: empty, and small."""
    return {"name": NO_TOKEN_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}


def dragonfly_volume(plan: Plan) -> dict[str, Any] | None:
    """The directory of the node's dfdaemon socket, when the downloader goes
    through Dragonfly. DirectoryOrCreate: on a node without the daemon the pod
    still starts, and the downloader says so and follows ifUnavailable."""
    p2p = plan.strategy.dragonfly(plan.model) if plan.preload else None
    if p2p is None:
        return None
    directory = p2p.socketPath.rsplit("/", 1)[0] or "/"
    return {"name": DRAGONFLY_VOLUME, "hostPath": {"path": directory, "type": "DirectoryOrCreate"}}


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
                              spec.include, spec.size)
    mounts = init_container_mounts()
    p2p = plan.strategy.dragonfly(model)
    if p2p is not None:
        args += ["--dragonfly-socket", f"{DRAGONFLY_MOUNT}/{p2p.socketPath.rsplit('/', 1)[1]}",
                 "--dragonfly-if-unavailable", p2p.ifUnavailable]
        mounts.append({"name": DRAGONFLY_VOLUME, "mountPath": DRAGONFLY_MOUNT, "readOnly": True})

    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if spec.authSecretName:
        env.append({"name": "MODEL_CACHE_AUTH_SECRET", "value": spec.authSecretName})
        scheme = scheme_of(spec.source)
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
        "volumeMounts": mounts,
        "securityContext": restricted_security_context(d.runAsUser),
    }
    give_downloader_resources(container, model)
    if "resources" in container:
        plan.strategy.grow_downloader(container, model)
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
        "volumeMounts": init_container_mounts(),
        "securityContext": restricted_security_context(d.runAsUser),
    }
    give_downloader_resources(container, plan.model)
    return container
