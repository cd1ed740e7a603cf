"""Strategy `nfs`: an inline NFS volume, the export the policy names
(`defaults.nfs.server` and `path`), filled once by the downloader and shared
by every replica on every node, with no PVC object to create: what EFS and
Filestore are underneath. The kubelet gives an NFS volume to no fsGroup, so the
export must be writable by the downloader's uid (`downloader.runAsUser`). A
policy without a server cannot serve it (`policy check` says so, /mutate
denies); Pod Security's restricted level allows no nfs volume: /mutate denies
such a pod with the fix, and a workload's template is warned about."""

from __future__ import annotations

import ipaddress
import re
from types import MappingProxyType
from typing import Annotated, Any, Mapping

from pydantic import AfterValidator

from webhook.facts.cluster import ClusterFacts, LookupKey, NamespaceInfo, namespace_key
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.grammar import AbsolutePath, Section, setting
from webhook.strategies.base import Strategy
from webhook.vocabulary import PSA_ENFORCE

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
# The Pod Security level that allows no nfs volume (baseline forbids only hostPath).
_RESTRICTED = "restricted"


def _check_server(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a host name or IP address (the NFS server, e.g. fs-0123.efs.example.com)")
    return value


class NfsSettings(Section):
    server: Annotated[str, AfterValidator(_check_server)] | None = setting(
        "host name or IP address", "the NFS server of strategy `nfs` (an EFS mount target, a Filestore instance); "
        "without it the strategy cannot serve a model")
    path: AbsolutePath | None = setting(
        "absolute path", "the export on that server; each model gets `<model>/<revision>/` in it, and the export "
        "must be writable by the downloader's uid (`downloader.runAsUser`)")


class Nfs(Strategy):
    name = "nfs"
    settings_key = "nfs"
    settings_model = NfsSettings
    builtin_settings = MappingProxyType({"path": "/"})
    volume_doc = "an inline `nfs` volume: the policy's `nfs.server` and `nfs.path`"
    init_doc = "writes `<model>/<revision>/`; the export must be writable by the downloader's uid"
    serving_doc = "mount it read-only at the mount path (`subPath`)"
    downloads = True

    def unusable(self, model: ModelView) -> str | None:
        if self.settings(model).server:
            return None
        return (f'strategy "nfs" needs defaults.nfs.server (the NFS server) in the policy of namespace '
                f"{model.namespace}; set it, or use another strategy")

    def volume(self, model: ModelView) -> dict[str, Any]:
        settings = self.settings(model)
        return {"nfs": {"server": settings.server, "path": settings.path}}

    def admission_lookups(self, namespace: str) -> tuple[LookupKey, ...]:
        return (namespace_key(namespace),)

    def admission_denial(self, namespace: str, found: Mapping[LookupKey, Any]) -> str | None:
        fact = found.get(namespace_key(namespace))
        if not isinstance(fact, NamespaceInfo) or not _restricted(fact):
            return None
        return (
            f"namespace {namespace} enforces Pod Security restricted, which forbids nfs volumes, so model.cache "
            "strategy nfs cannot work here; use strategy pvc (model.cache/strategy: pvc), for a PVC of the same "
            "export, or ask the platform team for a namespace at baseline"
        )

    def lookups(self, use: CacheUse) -> dict[str, LookupKey]:
        return {"namespace": namespace_key(use.namespace)}

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        if isinstance(facts.namespace, NamespaceInfo) and _restricted(facts.namespace):
            return [Finding("nfs-restricted", (
                f"namespace {facts.namespace.name} enforces Pod Security restricted, which forbids nfs volumes: "
                "pods will be rejected; use strategy pvc"
            ))]
        return []


STRATEGY = Nfs()


def _restricted(namespace: NamespaceInfo) -> bool:
    return namespace.labels.get(PSA_ENFORCE) == _RESTRICTED
