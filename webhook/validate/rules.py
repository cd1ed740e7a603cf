"""The validating rules: a pod the mutation gave + its resolved model + cluster
facts -> warnings, or a denial for what cannot work.

Pure: no I/O, no clock, no metrics. `lookups.py` fetches the facts, `review.py`
wires the two. What only one strategy checks is in its module (webhook/strategies/);
here is what every strategy shares. Every warning text is written for the person
running kubectl: it names the numbers and the fix, and stays under 120 characters
where it can.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from webhook.facts.cluster import MISSING, ClusterFacts, LookupKey, SecretInfo, Unavailable
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.strategies import REGISTRY
from webhook.validate.memory_caps import memory_cap_findings, sizes_memory
from webhook.vocabulary import INJECTED, VOLUME


__all__ = ["CheckResult", "Finding", "denial_for", "lookups_for", "run_checks", "secret_findings", "unavailable_finding"]


@dataclass(frozen=True)
class CheckResult:
    denial: str | None = None
    findings: tuple[Finding, ...] = field(default_factory=tuple)


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
    strategy = REGISTRY.get(use.strategy)  # a marker may name a strategy this version does not know
    return strategy.denial(use) if strategy is not None else None


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


_KIND_NAMES = {"pvc": "PVC", "secret": "Secret", "namespace": "namespace", "limits": "memory limits of namespace"}


def unavailable_finding(items: list[tuple[str, str, Unavailable]]) -> list[Finding]:
    """One warning for every lookup that failed, (kind, name, why), grouped by why:
    "could not check PVC m, Secret s: 403 forbidden (RBAC: get persistentvolumeclaims, secrets); allowed unchecked"."""
    if not items:
        return []
    groups: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    for kind, name, why in items:
        what, grants = groups.setdefault(why.reason, ([], {}))
        what.append(f"{_KIND_NAMES.get(kind, kind)} {name}")
        if why.forbidden and why.forbidden not in grants.setdefault(why.verb, []):
            grants[why.verb].append(why.forbidden)
    parts = []
    for reason, (what, grants) in groups.items():
        rbac = "; ".join(f"{verb} {', '.join(resources)}" for verb, resources in grants.items() if resources)
        hint = f" (RBAC: {rbac})" if rbac else ""
        parts.append(f"{', '.join(what)}: {reason}{hint}")
    return [Finding("cluster-unavailable", f"could not check {'; '.join(parts)}; allowed unchecked")]


def lookups_for(use: CacheUse) -> dict[str, LookupKey]:
    """The cluster facts the rules need for USE, by ClusterFacts field."""
    strategy = REGISTRY.get(use.strategy)  # a marker may name a strategy this version does not know
    keys = dict(strategy.lookups(use)) if strategy is not None else {}
    if use.secret_name:
        keys["secret"] = LookupKey("secret", use.namespace, use.secret_name)
    if sizes_memory(use):
        keys["limits"] = LookupKey("limits", use.namespace, use.namespace)
    return {name: keys[name] for name in _FACT_ORDER if name in keys}


_FACT_ORDER = tuple(f.name for f in fields(ClusterFacts))


def run_checks(use: CacheUse, model: ModelView, facts: ClusterFacts, template: bool = False) -> CheckResult:
    """All rules on one pod, or on a workload's pod TEMPLATE (never denied: its pods
    are checked when they are created). A denial stops the rest: the pod will not run."""
    denial = None if template else denial_for(use)
    if denial is not None:
        return CheckResult(denial=denial)
    strategy = REGISTRY.get(use.strategy)
    findings: list[Finding] = strategy.findings(use, model, facts) if strategy is not None else []
    findings += secret_findings(use, facts.secret)
    findings += memory_cap_findings(use, model, facts.limits)
    failed = [(key.kind, key.name, getattr(facts, name)) for name, key in lookups_for(use).items()
              if isinstance(getattr(facts, name), Unavailable)]
    findings += unavailable_finding(failed)
    return CheckResult(findings=tuple(findings))
