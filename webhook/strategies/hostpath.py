"""Strategy `hostpath`: a node directory (`DirectoryOrCreate`) from the policy,
filled by the downloader, shared by the pods of one node. Pod Security's
baseline and restricted levels forbid hostPath volumes: /mutate denies such a
pod with the fix, and a workload's template is warned about. The policy may also
ask that its pods be pinned to the cache nodes."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal, Mapping

from webhook.facts.cluster import ClusterFacts, LookupKey, NamespaceInfo, namespace_key
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from pydantic import field_validator

from webhook.grammar import AbsolutePath, Section, setting
from webhook.inventory import label_key
from webhook.strategies.placement import add_cache_affinity
from webhook.strategies.base import Strategy, downloader_uid, give_downloader_resources, init_container_mounts
from webhook.vocabulary import DRAGONFLY_SOCKET, PREPARE, PSA_ENFORCE, VOLUME_ROOT


class DragonflySettings(Section):
    """hostpath downloads through the node's Dragonfly daemon (docs/dragonfly.md):
    one origin download for all nodes. Per namespace under hostPath, per model
    beside its source; merged field by field."""

    enabled: bool | None = setting("bool", "turn it on")
    socketPath: AbsolutePath | None = setting(
        "absolute path", "dfdaemon's download socket as the node sees it; its directory is mounted read-only into "
        "the downloader only")
    ifUnavailable: Literal["direct", "refuse"] | None = setting(
        "`direct` or `refuse`", "the daemon missing or unhealthy: download straight from the origin (one log line "
        "says so), or fail the init container (the kubelet retries it)")


class HostPathSettings(Section):
    path: AbsolutePath | None = setting(
        "absolute path", "the node directory of strategy `hostpath`; the kubelet creates it, and `model-cache-prepare` "
        "gives each model's directory in it to the downloader "
        "([below](#what-the-webhook-adds-so-the-downloader-can-write))")
    requireNodePinning: bool | None = setting(
        "bool", "warn when a `hostpath` pod has no nodeSelector or node affinity (its replicas would land on nodes "
        "with a cold cache)")
    dragonfly: DragonflySettings | None = setting(
        "map", "send `hostpath` downloads through the node's Dragonfly daemon (dfdaemon): one origin download for "
        "all nodes, peers serving each other ([dragonfly.md](dragonfly.md))")
    agent: bool | None = setting(
        "bool", "the node agent ([agent.md](agent.md)) runs on the hostpath nodes and makes the cache's directories "
        "the downloader's: `hostpath` pods get no `model-cache-prepare` init container (no root container). Set it "
        "only where the agent runs")
    cacheAffinityWeight: int | None = setting(
        "integer, 0 to 100", "weight of the preferred node affinity the webhook adds to a `hostpath` pod toward the "
        "nodes whose agent reports the model at its revision (label `cache.model.cache/<model>-<digest>`), beside "
        "the pod's own affinity; `0` turns it off. A model's `prewarm.required` makes it a required one")

    @field_validator("cacheAffinityWeight")
    @classmethod
    def _weight(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 100:
            raise ValueError(f"cacheAffinityWeight {value} must be 0 to 100 (a node affinity weight; 0: off)")
        return value


class HostPath(Strategy):
    name = "hostpath"
    settings_key = "hostPath"
    settings_model = HostPathSettings
    builtin_settings = MappingProxyType({
        "path": "/var/lib/model-cache", "requireNodePinning": False, "agent": False, "cacheAffinityWeight": 50,
        "dragonfly": {"enabled": False, "socketPath": DRAGONFLY_SOCKET, "ifUnavailable": "direct"}})
    volume_doc = "`hostPath` (`DirectoryOrCreate`) from the policy"
    init_doc = ("writes `<model>/<revision>/`, after `model-cache-prepare` (root, only CHOWN and FOWNER) "
                "makes `<model>/` the downloader's")
    serving_doc = "mount it read-only at the mount path (`subPath`)"
    downloads = True
    node_local = True  # placed by what the nodes hold: place()

    def volume(self, model: ModelView) -> dict[str, Any]:
        return {"hostPath": {"path": self.settings(model).path, "type": "DirectoryOrCreate"}}

    def give_write_access(self, spec: dict[str, Any], model: ModelView) -> list[dict[str, Any]]:
        # The kubelet creates the directory root-owned (0755) and applies no
        # fsGroup to hostPath volumes: without this the downloader cannot write.
        # The node agent, where it runs, has made it the downloader's already.
        return [] if self.settings(model).agent else [prepare(model)]

    def place(self, spec: dict[str, Any], model: ModelView) -> None:
        prewarm = model.spec.prewarm
        add_cache_affinity(spec, label_key(model.name, model.revision), self.settings(model).cacheAffinityWeight or 0,
                           required=bool(prewarm and prewarm.required))

    def dragonfly(self, model: ModelView) -> DragonflySettings | None:
        base = self.settings(model).dragonfly or DragonflySettings()
        own = getattr(model.spec, "dragonfly", None)
        merged = {**base.model_dump(exclude_none=True), **(own.model_dump(exclude_none=True) if own else {})}
        settings = DragonflySettings.model_validate(merged)
        return settings if settings.enabled else None

    def admission_lookups(self, namespace: str) -> tuple[LookupKey, ...]:
        return (namespace_key(namespace),)

    def admission_denial(self, namespace: str, found: Mapping[LookupKey, Any]) -> str | None:
        fact = found.get(namespace_key(namespace))
        return pod_security_denial(fact) if isinstance(fact, NamespaceInfo) else None

    def lookups(self, use: CacheUse) -> dict[str, LookupKey]:
        return {"namespace": namespace_key(use.namespace)}

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        out: list[Finding] = []
        if self.settings(model).requireNodePinning and not _pinned(use.spec):
            out.append(Finding("hostpath-unpinned", (
                f"model {model.name} uses hostpath but the pod has no nodeSelector or nodeAffinity: "
                f"pin it to the cache nodes (policy rule)"
            )))
        if isinstance(facts.namespace, NamespaceInfo):
            level = forbids_host_path(facts.namespace)
            if level is not None:
                out.append(Finding("hostpath-baseline", (
                    f"namespace {facts.namespace.name} enforces Pod Security {level}, which forbids hostPath volumes: "
                    f"pods will be rejected; use strategy pvc"
                )))
        return out


STRATEGY = HostPath()


# Root without DAC_OVERRIDE may create only in a root that root owns (the
# kubelet's DirectoryOrCreate makes it root:root 0755); a root an admin gave
# to the downloader (its uid, or a group it is in) is the downloader's to
# create in, and root is left out. Whatever stays unusable, the downloader
# says with the owner, mode and fix (download/volume/access.py).
PREPARE_SCRIPT = (
    'mkdir -m 0755 "$1" 2>/dev/null; '
    'if [ -d "$1" ]; then exec install -d -o "$2" -g "$2" -m 0755 "$1"; fi; '
    'echo "model-cache-prepare: $1 is not root\'s to create (${1%/*} is $(stat -c \'uid %u gid %g mode %a\' "${1%/*}")'
    ', and this container has no DAC_OVERRIDE): left to the downloader"'
)


def prepare(model: ModelView) -> dict[str, Any]:
    """Makes the model's directory on the node (`<root>/<model>`, where the
    downloader keeps its lock and partial download) the downloader's, 0755,
    where root may: the kubelet creates a hostPath root-owned. Root, with no
    capability but CHOWN and FOWNER, touching nothing but that directory.
    `sh`, `install` and `stat` are in the downloader's image."""
    d = model.defaults.downloader
    uid = str(downloader_uid(model))
    container: dict[str, Any] = {
        "name": PREPARE,
        "image": d.image,
        "imagePullPolicy": d.imagePullPolicy,
        "command": ["sh", "-c", PREPARE_SCRIPT, PREPARE, f"{VOLUME_ROOT}/{model.name}", uid],
        "volumeMounts": init_container_mounts(),
        "securityContext": {
            "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    give_downloader_resources(container, model)
    return container


def _pinned(spec: Mapping[str, Any]) -> bool:
    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return bool(spec.get("nodeSelector") or spec.get("nodeName") or affinity)


def forbids_host_path(namespace: NamespaceInfo) -> str | None:
    """The Pod Security level NAMESPACE enforces, when that level forbids hostPath volumes."""
    level = namespace.labels.get(PSA_ENFORCE)
    return level if level in ("baseline", "restricted") else None


def pod_security_denial(namespace: NamespaceInfo) -> str | None:
    """What /mutate says for a hostpath pod in a namespace whose Pod Security
    forbids hostPath: PodSecurity runs before the validating webhooks, so only
    the mutating one can put the fix in front of the user."""
    level = forbids_host_path(namespace)
    if level is None:
        return None
    return (
        f"namespace {namespace.name} enforces Pod Security {level}, which forbids hostPath volumes, so "
        "model.cache strategy hostpath cannot work here; use strategy pvc (model.cache/strategy: pvc), "
        "or ask the platform team for a namespace that allows hostPath"
    )
