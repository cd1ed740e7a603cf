"""Strategy `pvc`: the policy's ReadWriteMany PVC, filled once by the
downloader, shared by every replica. It warns when the PVC is missing, too small
for the model plus headroom, unusable, or mountable by one node only."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

from webhook.facts.cluster import MISSING, ClusterFacts, LookupKey, PvcInfo, Unavailable
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.grammar import ObjectName, Section, setting
from webhook.quantity import describe as format_size
from webhook.strategies.base import Strategy, downloader_uid
from webhook.vocabulary import DOWNLOADER


class PvcSettings(Section):
    claimName: ObjectName | None = setting(
        "object name", "the ReadWriteMany PVC of strategy `pvc`, in the pod's namespace; the platform team creates it")


class Pvc(Strategy):
    name = "pvc"
    settings_key = "pvc"
    settings_model = PvcSettings
    builtin_settings = MappingProxyType({"claimName": "model-cache"})
    volume_doc = "the policy's RWX PVC"
    init_doc = ("writes `<model>/<revision>/`; a pod without `fsGroup` gets the downloader's group as "
                "`fsGroup` (`OnRootMismatch`), so that the volume is writable")
    serving_doc = "mount it read-only at the mount path (`subPath`)"
    downloads = True

    def volume(self, model: ModelView) -> dict[str, Any]:
        return {"persistentVolumeClaim": {"claimName": self.settings(model).claimName}}

    def give_write_access(self, spec: dict[str, Any], model: ModelView) -> list[dict[str, Any]]:
        # The claim's volume starts root-owned; the kubelet hands it to fsGroup
        # (local, most block and CSI volumes; NFS exports must be writable by it).
        give_volume_to_group(spec, downloader_uid(model))
        return []

    def lookups(self, use: CacheUse) -> dict[str, LookupKey]:
        claim = claim_name(use)
        return {"pvc": LookupKey("pvc", use.namespace, claim)} if claim else {}

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        return pvc_findings(use, model, facts.pvc)


STRATEGY = Pvc()


def give_volume_to_group(spec: dict[str, Any], group: int) -> None:
    """The kubelet makes a claim's volume group-writable by the pod's fsGroup,
    which every container of the pod has: without one, the downloader (a
    non-root user) cannot write a volume that starts root-owned. The pod
    author's own fsGroup is kept; OnRootMismatch spares a model of many files
    a recursive chown at every pod start."""
    context = spec.setdefault("securityContext", {})
    if "fsGroup" not in context:
        context["fsGroup"] = group
        context.setdefault("fsGroupChangePolicy", "OnRootMismatch")


def claim_name(use: CacheUse) -> str | None:
    """The claim of the pod's model volume, when it is a PVC."""
    return (use.volume.get("persistentVolumeClaim") or {}).get("claimName")


def _needed(model: ModelView) -> tuple[Decimal, str]:
    headroom = model.defaults.pvcHeadroomPercent
    needed = model.volume_bytes * (1 + Decimal(str(headroom)) / 100)
    return needed, format_size(needed, round_up=True)


def pvc_findings(use: CacheUse, model: ModelView, pvc: Any) -> list[Finding]:
    name = claim_name(use)
    if name is None or pvc is None or isinstance(pvc, Unavailable):
        return []
    needed, needed_text = _needed(model)
    if pvc is MISSING:
        return [Finding("pvc-missing", (
            f"PVC {name} not found in namespace {use.namespace}: the pod will stay Pending; "
            f"create a ReadWriteMany PVC of at least {needed_text}"
        ))]
    assert isinstance(pvc, PvcInfo)
    out: list[Finding] = []
    if pvc.deleting:
        out.append(Finding("pvc-unusable", f"PVC {name} is being deleted: new pods that use it will not start; recreate it"))
    elif pvc.phase == "Lost":
        out.append(Finding("pvc-unusable", f"PVC {name} is Lost (its volume is gone): pods that use it will not start; recreate it"))
    size, verb = (pvc.capacity, "has") if pvc.capacity is not None else (pvc.requested, "requests")
    if size is not None and size < needed:
        out.append(Finding("pvc-small", (
            f"PVC {name} {verb} {format_size(size)}; model {model.name} needs {format_size(model.volume_bytes, True)} + "
            f"{model.defaults.pvcHeadroomPercent:g}% headroom = {needed_text}: grow the PVC"
        )))
    modes = set(pvc.access_modes)
    if modes and not modes & {"ReadWriteMany", "ReadOnlyMany"}:
        mode = "ReadWriteOncePod" if modes == {"ReadWriteOncePod"} else "ReadWriteOnce"
        who = "no second pod can mount it" if mode == "ReadWriteOncePod" else "replicas on other nodes cannot mount it"
        out.append(Finding("pvc-rwo", f"PVC {name} is {mode}: {who}; use a ReadWriteMany PVC"))
    elif modes == {"ReadOnlyMany"} and use.preload:
        out.append(Finding("pvc-rwo", (
            f"PVC {name} is ReadOnlyMany: init container {DOWNLOADER} cannot write the model; use a ReadWriteMany PVC"
        )))
    return out
