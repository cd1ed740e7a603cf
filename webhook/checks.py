"""The validating rules: a pod (final or predicted) + its resolved model + cluster facts
-> warnings, or a denial for what cannot work.

Pure: no I/O, no clock. `cluster.py` fetches the facts, `validation.py` wires the two.
Every warning text is written for the person running kubectl: it names the
numbers and the fix, and stays under 120 characters where it can.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping


from webhook.policy import ResolvedModel

# Names the mutation gives what it adds (DESIGN.md, "What a mutation adds").
NAME = "model.cache/name"
STRATEGY = "model.cache/strategy"
CONTAINERS = "model.cache/containers"
PRELOAD = "model.cache/preload"
INJECTED = "model.cache/injected"
VOLUME = "model-cache"
DOWNLOADER = "model-cache-download"
OCI_COPY = "model-cache-oci-copy"
MIRROR = "kubernetes.io/config.mirror"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"

# Secret keys the downloader needs, by source scheme (DESIGN.md: "a Secret with
# the key HF_TOKEN"). Used only where the pod itself does not tell us (a pod
# template the mutation has not seen yet); a final pod's secretKeyRefs win.
REQUIRED_SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "hf": ("HF_TOKEN",),
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "http": ("MODEL_CACHE_HTTP_TOKEN",),
    "https": ("MODEL_CACHE_HTTP_TOKEN",),
}

# Kubernetes' limits on AdmissionResponse.warnings (k8s.io/apiserver warning
# recorder): each is cut past 256 characters, all are dropped past 4096 bytes.
MAX_WARNING_CHARS = 256
MAX_WARNINGS_BYTES = 4096


# --- cluster facts: what cluster.py reports -----------------------------------


@dataclass(frozen=True)
class PvcInfo:
    name: str
    requested: Decimal | None  # spec.resources.requests.storage
    capacity: Decimal | None  # status.capacity.storage, once bound
    access_modes: tuple[str, ...]  # status.accessModes once bound, else spec.accessModes
    phase: str | None  # Pending, Bound, Lost
    deleting: bool = False  # metadata.deletionTimestamp is set


@dataclass(frozen=True)
class SecretInfo:
    """A Secret's key names only: values are never read into this object."""

    name: str
    keys: frozenset[str]


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    labels: Mapping[str, str]


class _Missing:
    """The API server answered 404."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Unavailable:
    """The fact could not be had: 403, an API error, a timeout."""

    reason: str
    forbidden: str | None = None  # the resource RBAC denied (persistentvolumeclaims, ...)




@dataclass(frozen=True)
class ClusterFacts:
    pvc: PvcInfo | _Missing | Unavailable | None = None
    secret: SecretInfo | _Missing | Unavailable | None = None
    namespace: NamespaceInfo | _Missing | Unavailable | None = None


# --- what a pod does with the cache ---------------------------------------------


@dataclass(frozen=True)
class CacheUse:
    """A pod's use of the model cache, read from the final pod (`final`) or, for a pod
    the mutation has not changed (a Deployment's template), predicted from its
    annotations and the policy."""

    model: str
    strategy: str
    final: bool
    namespace: str
    has_volume: bool
    volume: Mapping[str, Any]
    mounted_by: tuple[str, ...]  # containers of spec.containers that mount the volume
    serving: tuple[Mapping[str, Any], ...]  # the containers that get the model
    preload: bool  # a downloader init container is (or will be) there
    oci_copy: bool
    pvc_name: str | None
    secret_name: str | None  # the authSecretName, when this pod uses it
    secret_keys: frozenset[str]  # keys of it the pod cannot start without
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class Finding:
    rule: str
    text: str


@dataclass(frozen=True)
class CheckResult:
    denial: str | None = None
    findings: tuple[Finding, ...] = field(default_factory=tuple)


def annotations_of(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return ((pod.get("metadata") or {}).get("annotations")) or {}


def injected_strategy(annotations: Mapping[str, str]) -> tuple[str, str] | None:
    """(strategy, model) from `model.cache/injected: <strategy>/<model>/<revision>`."""
    value = annotations.get(INJECTED)
    if not value:
        return None
    parts = value.split("/")
    if len(parts) < 2 or not parts[0]:
        return None
    return parts[0], parts[1]


def _containers(spec: Mapping[str, Any], key: str = "containers") -> list[Mapping[str, Any]]:
    return [c for c in (spec.get(key) or []) if isinstance(c, Mapping)]


def _mounts(container: Mapping[str, Any], volume: str) -> bool:
    return any(m.get("name") == volume for m in container.get("volumeMounts") or [])


def _secret_refs(spec: Mapping[str, Any], secret: str) -> tuple[bool, frozenset[str]]:
    """Whether any container of the pod uses SECRET, and the keys it must hold
    (non-optional secretKeyRefs, secret volume items)."""
    used, keys = False, set()
    for c in _containers(spec) + _containers(spec, "initContainers"):
        for env in c.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if ref.get("name") == secret:
                used = True
                if not ref.get("optional") and ref.get("key"):
                    keys.add(ref["key"])
        for src in c.get("envFrom") or []:
            ref = src.get("secretRef") or {}
            if ref.get("name") == secret and not ref.get("optional"):
                used = True
    for vol in spec.get("volumes") or []:
        ref = vol.get("secret") or {}
        if ref.get("secretName") == secret and not ref.get("optional"):
            used = True
            keys.update(i["key"] for i in ref.get("items") or [] if i.get("key"))
    return used, frozenset(keys)


def describe(pod: Mapping[str, Any], model: ResolvedModel, namespace: str) -> CacheUse:
    """What POD does with MODEL's cache. POD has `model.cache/name`."""
    annotations = annotations_of(pod)
    spec = pod.get("spec") or {}
    marker = injected_strategy(annotations)
    containers = _containers(spec)
    inits = {c.get("name") for c in _containers(spec, "initContainers")}
    volume = next((v for v in spec.get("volumes") or [] if v.get("name") == VOLUME), None)
    mounted_by = tuple(c.get("name", "") for c in containers if _mounts(c, VOLUME))
    scheme = model.spec.source.split("://", 1)[0]
    secret = model.spec.authSecretName

    if marker is not None:
        strategy = marker[0]
        preload = DOWNLOADER in inits
        serving = tuple(c for c in containers if _mounts(c, VOLUME))
        claim = ((volume or {}).get("persistentVolumeClaim") or {}).get("claimName")
        used, keys = _secret_refs(spec, secret) if secret else (False, frozenset())
        if secret and preload and not used:
            # A downloader that carries no reference to the Secret: expect the keys its source needs.
            used, keys = True, frozenset(REQUIRED_SECRET_KEYS.get(scheme, ()))
        return CacheUse(
            model=model.name, strategy=strategy, final=True, namespace=namespace,
            has_volume=volume is not None, volume=volume or {}, mounted_by=mounted_by,
            serving=serving, preload=preload, oci_copy=OCI_COPY in inits,
            pvc_name=claim if strategy == "pvc" else None,
            secret_name=secret if used else None, secret_keys=keys, spec=spec,
        )

    # Not mutated (yet): predict from the annotations and the policy. Bad
    # annotation values are the mutation's to deny; here they fall back to defaults.
    strategy = (annotations.get(STRATEGY) or "").strip() or model.strategy
    preload = (annotations.get(PRELOAD) or "true").strip().lower() != "false"
    preload = preload and strategy in ("pvc", "hostpath", "memory")
    wanted = {n.strip() for n in (annotations.get(CONTAINERS) or "").split(",") if n.strip()}
    serving = tuple(c for c in containers if not wanted or c.get("name") in wanted)
    return CacheUse(
        model=model.name, strategy=strategy, final=False, namespace=namespace,
        has_volume=False, volume={}, mounted_by=(), serving=serving, preload=preload,
        oci_copy=strategy == "oci",
        pvc_name=model.defaults.pvc.claimName if strategy == "pvc" else None,
        secret_name=secret if secret and preload else None,
        secret_keys=frozenset(REQUIRED_SECRET_KEYS.get(scheme, ())) if secret and preload else frozenset(),
        spec=spec,
    )


# --- formatting -------------------------------------------------------------------

_UNITS = (("Ti", Decimal(1024) ** 4), ("Gi", Decimal(1024) ** 3), ("Mi", Decimal(1024) ** 2), ("Ki", Decimal(1024)))


def format_size(value: Decimal, round_up: bool = False) -> str:
    """Bytes as a short binary quantity with at most one decimal: 16Gi, 19.2Gi, 512Mi.
    ROUND_UP for what is needed (never understate it), down for what is there."""
    for suffix, unit in _UNITS:
        if value >= unit:
            tenths = value * 10 / unit
            tenths = Decimal(math.ceil(tenths)) if round_up else Decimal(math.floor(tenths))
            text = f"{tenths / 10:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return f"{int(value)}"


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
        level = namespace.labels.get(PSA_ENFORCE)
        if level in ("baseline", "restricted"):
            out.append(Finding("hostpath-baseline", (
                f"namespace {namespace.name} enforces Pod Security {level}, which forbids hostPath volumes: "
                f"pods will be rejected; use strategy pvc"
            )))
    return out


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
    if not use.final and not template:
        # A Pod with model.cache/name reaches us unchanged when the mutating
        # webhook failed open or does not cover its namespace.
        findings.append(Finding("not-injected", (
            f"model {model.name} was not injected by the model-cache mutating webhook: nothing is mounted; "
            f"check that webhook"
        )))
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


# --- Kubernetes' limits on warnings -------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_warning(text: str) -> str:
    """One line of printable text within MAX_WARNING_CHARS (the API server would cut it)."""
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > MAX_WARNING_CHARS:
        text = text[: MAX_WARNING_CHARS - 3].rstrip() + "..."
    return text


def limit_findings(findings: list[Finding] | tuple[Finding, ...]) -> list[Finding]:
    """Deduplicated (first wins), each cleaned, all together within MAX_WARNINGS_BYTES;
    what does not fit is counted in a last warning rather than silently dropped."""
    seen: set[str] = set()
    unique: list[Finding] = []
    for f in findings:
        text = clean_warning(f.text)
        if text and text not in seen:
            seen.add(text)
            unique.append(Finding(f.rule, text))
    kept: list[Finding] = []
    used = 0
    reserve = 64  # room for the "N more" line
    for i, f in enumerate(unique):
        size = len(f.text.encode("utf-8"))
        last = i == len(unique) - 1
        if used + size <= MAX_WARNINGS_BYTES - (0 if last else reserve):
            kept.append(f)
            used += size
        else:
            rest = len(unique) - len(kept)
            kept.append(Finding("truncated", f"{rest} more model-cache warnings not shown; see the webhook log"))
            break
    return kept
