"""Why a pod template would, or would not, be injected: the answer to "I added
the annotation and nothing happened". Pure: objects, policies and facts in,
verdicts out; `model-cache explain` prints them.

The webhook sees only pods that carry `model.cache/name` exactly (the API
server's matchConditions filter the rest out), so a misspelled trigger, or the
right one on the Deployment's own metadata, is silently ignored: only a look
at the manifest before it is applied can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webhook.admission.shapes import pod_problem
from webhook.errors import Denied
from webhook.mutate import ModelResolver, mutate_pod
from webhook.validate.facts import FactsSource
from webhook.validate.review import review_template
from webhook.objects import pod_templates
from webhook.strategies import get as strategy_named
from webhook.vocabulary import INJECTED, INPUTS, MIRROR, NAME, PREFIX

MAX_DISTANCE = 3  # edits that still read as a typo of one of our keys


@dataclass
class Verdict:
    """One pod template's fate."""

    subject: str  # "Deployment llm/llama-vllm (spec.template)"
    outcome: str  # injected, not-injected, denied, invalid, skipped
    summary: str
    hints: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def near_misses(keys: list[str]) -> list[tuple[str, str, int]]:
    """(key, the key of ours it is close to, distance) for keys that look like a
    typo of a model.cache/ annotation: `model.cache/nmae`, `model-cache/name`."""
    out = []
    for key in keys:
        if key in INPUTS or key == INJECTED:
            continue
        best = min(INPUTS, key=lambda ours: edit_distance(key, ours))
        distance = edit_distance(key, best)
        if distance <= MAX_DISTANCE or (key.startswith(PREFIX) and distance <= 6):
            out.append((key, best, distance))
    return out


def _mapping_keys(value: Any) -> list[str]:
    return [str(k) for k in value] if isinstance(value, dict) else []


def explain_object(obj: dict[str, Any], namespace: str | None, policies: ModelResolver,
                   facts: FactsSource | None = None) -> list[Verdict]:
    """A verdict for every Pod and pod template in OBJ."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    ns = meta.get("namespace") or namespace or "default"
    name = f"{obj.get('kind', 'object')} {ns}/{meta.get('name', '(unnamed)')}"
    verdicts = []
    for where, pod in pod_templates(obj):
        subject = f"{name} ({where})" if where else name
        verdicts.append(_explain_pod(subject, where, obj, pod, ns, policies, facts))
    return verdicts


def _explain_pod(subject: str, where: str, obj: dict[str, Any], pod: dict[str, Any] | None, namespace: str,
                 policies: ModelResolver, facts: FactsSource | None) -> Verdict:
    if pod is None:
        return Verdict(subject, "invalid", f"no pod template at {where}")
    problem = pod_problem(pod, where)
    if problem is not None:
        return Verdict(subject, "invalid", problem)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if MIRROR in annotations:
        return Verdict(subject, "skipped", "a mirror pod: never changed")
    if INJECTED in annotations:
        return Verdict(subject, "skipped", f"injected already ({INJECTED}: {annotations[INJECTED]})")
    if NAME not in annotations:
        return Verdict(subject, "not-injected", f"not injected: no {NAME} annotation on the pod template",
                       hints=_trigger_hints(where, obj, pod))
    try:
        mutated, plan = mutate_pod(pod, namespace, policies)
    except Denied as err:
        who = "it would be denied" if not where else "its pods would be denied"
        return Verdict(subject, "denied", f"{who}: {err}")
    if mutated is None or plan is None:
        return Verdict(subject, "skipped", "left as it is (it carries our volume already)")
    verdict = Verdict(subject, "injected", (
        f"injected: model {plan.model.name} (revision {plan.model.revision}, {plan.model.spec.size}) from "
        f"{plan.model.policy_file}, strategy {plan.strategy}, mounted read-only at {plan.mount_path} in "
        f"{', '.join(plan.targets)}" + ("" if plan.preload or not strategy_named(plan.strategy).downloads
                                         else ", no downloader (preload off)")
    ))
    verdict.warnings = review_template(pod, namespace, policies, facts).warnings
    return verdict


def _trigger_hints(where: str, obj: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    hints = []
    pod_meta = pod.get("metadata") or {}
    at = f"{where}.metadata" if where else "metadata"
    for key, ours, distance in near_misses(_mapping_keys(pod_meta.get("annotations"))):
        hints.append(f"{at}.annotations has {key!r}: did you mean {ours!r}? (edit distance {distance})")
    for key, ours, distance in near_misses(_mapping_keys(pod_meta.get("labels"))):
        hints.append(f"{at}.labels has {key!r}: {ours!r} must be an annotation, not a label")
    if NAME in _mapping_keys(pod_meta.get("labels")):
        hints.append(f"{at}.labels has {NAME!r}: it must be an annotation, not a label")
    if where:
        own = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        own_keys = _mapping_keys(own.get("annotations"))
        if NAME in own_keys:
            hints.append(f"{NAME} is on the {obj.get('kind')}'s own metadata; the webhook reads the pod's: "
                         f"move it to {where}.metadata.annotations")
        for key, ours, distance in near_misses(own_keys):
            hints.append(f"metadata.annotations has {key!r} (like {ours!r}, edit distance {distance}), on the "
                         f"{obj.get('kind')}'s own metadata; the webhook reads {where}.metadata.annotations")
    if not hints:
        hints.append(f"add {NAME}: <model> to {at}.annotations to ask for a model")
    return hints
