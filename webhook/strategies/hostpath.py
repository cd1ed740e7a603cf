"""Strategy `hostpath`: a node directory (`DirectoryOrCreate`) from the policy,
filled by the downloader, shared by the pods of one node. Pod Security's
baseline and restricted levels forbid hostPath volumes: /mutate denies such a
pod with the fix, and a workload's template is warned about. The policy may also
ask that its pods be pinned to the cache nodes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from webhook.strategies.base import Strategy
from webhook.validate.facts import ClusterFacts, LookupKey, NamespaceInfo
from webhook.validate.finding import Finding
from webhook.vocabulary import PSA_ENFORCE

if TYPE_CHECKING:
    from webhook.policy.resolved import ResolvedModel
    from webhook.validate.usage import CacheUse


class HostPath(Strategy):
    name = "hostpath"
    volume_doc = "`hostPath` (`DirectoryOrCreate`) from the policy"
    init_doc = ("writes `<model>/<revision>/`, after `model-cache-prepare` (root, only CHOWN and FOWNER) "
                "makes `<model>/` the downloader's")
    serving_doc = "mount it read-only at the mount path (`subPath`)"
    downloads = True
    # The kubelet creates the directory root-owned (0755) and applies no
    # fsGroup to hostPath volumes: without this the downloader cannot write.
    prepares_directory = True  # unless the policy says the node agent prepares it (hostPath.agent)
    node_local = True

    def volume(self, model: ResolvedModel) -> dict[str, Any]:
        return {"hostPath": {"path": model.defaults.hostPath.path, "type": "DirectoryOrCreate"}}

    def admission_lookups(self, namespace: str) -> tuple[LookupKey, ...]:
        return (_namespace_key(namespace),)

    def admission_denial(self, namespace: str, found: Mapping[LookupKey, Any]) -> str | None:
        fact = found.get(_namespace_key(namespace))
        return pod_security_denial(fact) if isinstance(fact, NamespaceInfo) else None

    def lookups(self, use: CacheUse) -> dict[str, LookupKey]:
        return {"namespace": _namespace_key(use.namespace)}

    def findings(self, use: CacheUse, model: ResolvedModel, facts: ClusterFacts) -> list[Finding]:
        out: list[Finding] = []
        if model.defaults.hostPath.requireNodePinning and not _pinned(use.spec):
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


def _namespace_key(namespace: str) -> LookupKey:
    return LookupKey("namespace", namespace, namespace)


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
