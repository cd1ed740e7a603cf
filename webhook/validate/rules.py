"""The validating rules: a pod the mutation gave + its resolved model + cluster
facts -> warnings, or a denial for what cannot work.

Pure: no I/O, no clock, no metrics. `lookups.py` fetches the facts, `review.py`
wires the two. Every warning text is written for the person running kubectl: it
names the numbers and the fix, and stays under 120 characters where it can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from webhook.policy import ResolvedModel
from webhook.quantity import describe as format_size
from webhook.validate.facts import MISSING, ClusterFacts, NamespaceInfo, PvcInfo, SecretInfo, Unavailable
from webhook.validate.usage import CacheUse
from webhook.vocabulary import DOWNLOADER, INJECTED, OCI_COPY, PRELOAD, PSA_ENFORCE, VOLUME


@dataclass(frozen=True)
class Finding:
    rule: str
    text: str


@dataclass(frozen=True)
class CheckResult:
    denial: str | None = None
    findings: tuple[Finding, ...] = field(default_factory=tuple)


def _percent(value: float) -> str:
    return f"{value:g}%"


# --- the rules ------------------------------------------------------------------


def denial_for(use: CacheUse) -> str | None:
    """What cannot work: the mutation's additions that a later webhook removed."""
    if not use.final:
        return None
    marker = f"{INJECTED}={use.strategy}/{use.model}"
    if not use.has_volume:
        return (
            f"pod is marked {marker} but has no volume {VOLUME} (removed by a later webhook?): "
            f"the model cannot be mounted; recreate the pod or fix the other webhook"
        )
    if not use.mounted_by:
        return (
            f"pod is marked {marker} but no container mounts volume {VOLUME} (removed by a later webhook?): "
            f"the model is not visible; recreate the pod or fix the other webhook"
        )
    if use.strategy == "memory" and not use.preload:
        return (
            f"model {use.model} uses strategy memory but the pod has no init container {DOWNLOADER}: the memory "
            f"volume starts empty and nothing fills it; drop {PRELOAD}: \"false\" or use strategy pvc"
        )
    if use.strategy == "oci" and not use.oci_copy:
        return (
            f"model {use.model} uses strategy oci but the pod has no init container {OCI_COPY}: the volume starts "
            f"empty and nothing fills it; recreate the pod or fix the webhook that removed it"
        )
    return None


def _needed(model: ResolvedModel) -> tuple[Decimal, str]:
    headroom = model.defaults.pvcHeadroomPercent
    needed = model.size_bytes * (1 + Decimal(str(headroom)) / 100)
    return needed, format_size(needed, round_up=True)


def pvc_findings(use: CacheUse, model: ResolvedModel, pvc: Any) -> list[Finding]:
    if use.pvc_name is None or pvc is None or isinstance(pvc, Unavailable):
        return []
    needed, needed_text = _needed(model)
    name = use.pvc_name
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
            f"PVC {name} {verb} {format_size(size)}; model {model.name} needs {format_size(model.size_bytes, True)} + "
            f"{_percent(model.defaults.pvcHeadroomPercent)} headroom = {needed_text}: grow the PVC"
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


def secret_findings(use: CacheUse, secret: Any) -> list[Finding]:
    if use.secret_name is None or secret is None or isinstance(secret, Unavailable):
        return []
    name = use.secret_name
    if secret is MISSING:
        keys = ("key " + ", ".join(sorted(use.secret_keys))) if use.secret_keys else "the credentials"
        return [Finding("secret-missing", (
            f"Secret {name} for model {use.model} not found in namespace {use.namespace}: "
            f"the download cannot start; create it with {keys}"
        ))]
    assert isinstance(secret, SecretInfo)
    lacking = sorted(use.secret_keys - secret.keys)
    if not lacking:
        return []
    return [Finding("secret-key-missing", (
        f"Secret {name} has no key {', '.join(lacking)}: the download of model {use.model} cannot start; add it"
    ))]


def _has_memory_limit(container: Mapping[str, Any]) -> bool:
    return ((container.get("resources") or {}).get("limits") or {}).get("memory") is not None


def memory_findings(use: CacheUse, model: ResolvedModel) -> list[Finding]:
    if use.strategy != "memory":
        return []
    out: list[Finding] = []
    size = format_size(model.size_bytes, round_up=True)
    if use.preload:
        out.append(Finding("memory-preload", (
            f"model {model.name} ({size}) uses strategy memory: it is downloaded again on every pod start; "
            f"use strategy pvc or hostpath"
        )))
    # Pod-level resources (Kubernetes >= 1.32) bound the whole pod, tmpfs included.
    pod_limit = ((use.spec.get("resources") or {}).get("limits") or {}).get("memory")
    unbounded = [c.get("name", "?") for c in use.serving if not _has_memory_limit(c)]
    if pod_limit is None and unbounded:
        out.append(Finding("memory-no-limit", (
            f"model {model.name} keeps {size} in memory but container {', '.join(unbounded)} has no memory limit: "
            f"set resources.limits.memory"
        )))
    return out


def oci_findings(model: ResolvedModel) -> list[Finding]:
    if not model.spec.is_oci:
        return []
    ref = model.spec.source.removeprefix("oci://")
    if "@" in ref:  # pinned by digest (name@sha256:..., or name:tag@sha256:...)
        return []
    last = ref.rsplit("/", 1)[-1]
    shown = ref if ":" in last else f"{ref} (tag latest)"
    return [Finding("oci-tag", (
        f"model {model.name}: image {shown} is a tag: pin it by digest (@sha256:...) in the policy"
    ))]


def _pinned(spec: Mapping[str, Any]) -> bool:
    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return bool(spec.get("nodeSelector") or spec.get("nodeName") or affinity)


def hostpath_findings(use: CacheUse, model: ResolvedModel, namespace: Any) -> list[Finding]:
    if use.strategy != "hostpath":
        return []
    out: list[Finding] = []
    if model.defaults.hostPath.requireNodePinning and not _pinned(use.spec):
        out.append(Finding("hostpath-unpinned", (
            f"model {model.name} uses hostpath but the pod has no nodeSelector or nodeAffinity: "
            f"pin it to the cache nodes (policy rule)"
        )))
    if isinstance(namespace, NamespaceInfo):
        level = forbids_host_path(namespace)
        if level is not None:
            out.append(Finding("hostpath-baseline", (
                f"namespace {namespace.name} enforces Pod Security {level}, which forbids hostPath volumes: "
                f"pods will be rejected; use strategy pvc"
            )))
    return out


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


_KIND_NAMES = {"pvc": "PVC", "secret": "Secret", "namespace": "namespace"}


def unavailable_finding(items: list[tuple[str, str, Unavailable]]) -> list[Finding]:
    """One warning for every lookup that failed, (kind, name, why), grouped by why:
    "could not check PVC m, Secret s: 403 forbidden (RBAC: get persistentvolumeclaims, secrets); allowed unchecked"."""
    if not items:
        return []
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for kind, name, why in items:
        what, resources = groups.setdefault(why.reason, ([], []))
        what.append(f"{_KIND_NAMES.get(kind, kind)} {name}")
        if why.forbidden and why.forbidden not in resources:
            resources.append(why.forbidden)
    parts = []
    for reason, (what, resources) in groups.items():
        hint = f" (RBAC: get {', '.join(resources)})" if resources else ""
        parts.append(f"{', '.join(what)}: {reason}{hint}")
    return [Finding("cluster-unavailable", f"could not check {'; '.join(parts)}; allowed unchecked")]


def run_checks(use: CacheUse, model: ResolvedModel, facts: ClusterFacts, template: bool = False) -> CheckResult:
    """All rules on one pod, or on a workload's pod TEMPLATE (never denied: its pods
    are checked when they are created). A denial stops the rest: the pod will not run."""
    denial = None if template else denial_for(use)
    if denial is not None:
        return CheckResult(denial=denial)
    findings: list[Finding] = []
    findings += memory_findings(use, model)
    findings += pvc_findings(use, model, facts.pvc)
    findings += secret_findings(use, facts.secret)
    findings += oci_findings(model)
    findings += hostpath_findings(use, model, facts.namespace)
    failed = [
        (kind, name, fact)
        for kind, name, fact in (
            ("pvc", use.pvc_name, facts.pvc),
            ("secret", use.secret_name, facts.secret),
            ("namespace", use.namespace, facts.namespace),
        )
        if isinstance(fact, Unavailable)
    ]
    findings += unavailable_finding(failed)  # type: ignore[arg-type]
    return CheckResult(findings=tuple(findings))
