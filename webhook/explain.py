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
from webhook.admission.validating import review_template
from webhook.errors import Denied
from webhook.inventory import NodeView, candidates_holding, holders_line
from webhook.facts.cluster import FactsSource
from webhook.mutate import ModelResolver, mutate_pod
from webhook.objects import Path, PodTemplate, annotations_of, dig, pod_templates
from webhook.vocabulary import INJECTED as INJECTED_KEY, INPUTS, MIRROR, NAME, PREFIX, TYPO_DISTANCE, closest_input


# What explain says of a pod template. FAILED ones make `explain` exit 1: the
# template looks meant for model-cache, but its pods would not get the model.
INJECTED = "injected"
MISSED = "missed"  # a misspelled trigger, or the trigger where the webhook never looks
DENIED = "denied"
INVALID = "invalid"  # not a pod the API server would accept
NOT_ASKED = "not-asked"  # nothing in it asks for a model: the webhook lets it pass untouched
SKIPPED = "skipped"  # injected already, a mirror pod
OUTCOMES = (INJECTED, MISSED, DENIED, INVALID, NOT_ASKED, SKIPPED)
FAILED = frozenset({MISSED, DENIED, INVALID})


@dataclass
class Verdict:
    """One pod template's fate."""

    kind: str
    namespace: str
    name: str
    where: str  # "spec.template"; "" for a Pod
    outcome: str  # one of OUTCOMES
    summary: str
    hints: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    injected: str | None = None  # the model.cache/injected value it would get
    # For a node-local cache (hostpath) with the cluster's Nodes at hand:
    # "3 of 5 candidate nodes hold llama-3-8b@abc123 (a, b, c)".
    placement: str | None = None

    @property
    def subject(self) -> str:
        """"Deployment llm/llama-vllm (spec.template)"."""
        name = f"{self.kind} {self.namespace}/{self.name}"
        return f"{name} ({self.where})" if self.where else name

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED


def near_misses(keys: list[str]) -> list[tuple[str, str, int]]:
    """(key, the key of ours it is close to, distance) for keys that look like a
    typo of a model.cache/ annotation: `model.cache/nmae`, `model-cache/name`."""
    out = []
    for key in keys:
        if key in INPUTS or key == INJECTED_KEY:
            continue
        best, distance = closest_input(key)
        if distance <= TYPO_DISTANCE or (key.startswith(PREFIX) and distance <= 6):
            out.append((key, best, distance))
    return out


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mapping_keys(value: Any) -> list[str]:
    return [str(k) for k in value] if isinstance(value, dict) else []


def explain_object(obj: dict[str, Any], namespace: str | None, policies: ModelResolver,
                   facts: FactsSource | None = None, nodes: list[NodeView] | None = None) -> list[Verdict]:
    """A verdict for every Pod and pod template in OBJ; NODES (the cluster's,
    as their agents publish them) add where the model already is."""
    return [explain_template(t, namespace, policies, facts, nodes) for t in pod_templates(obj)]


def explain_template(template: PodTemplate, namespace: str | None, policies: ModelResolver,
                     facts: FactsSource | None = None, nodes: list[NodeView] | None = None) -> Verdict:
    meta = _mapping(template.owner.get("metadata"))
    ns = meta.get("namespace") or namespace or "default"
    verdict = Verdict(str(template.owner.get("kind", "object")), ns, str(meta.get("name", "(unnamed)")),
                      template.where, NOT_ASKED, "")
    pod, where = template.pod, template.where
    if pod is None:
        return _say(verdict, INVALID, f"no pod template at {where}")
    problem = pod_problem(pod, where)
    if problem is not None:
        return _say(verdict, INVALID, problem)
    annotations = annotations_of(pod)
    if MIRROR in annotations:
        return _say(verdict, SKIPPED, "a mirror pod: never changed")
    if INJECTED_KEY in annotations:
        verdict.injected = str(annotations[INJECTED_KEY])
        return _say(verdict, SKIPPED, f"injected already ({INJECTED_KEY}: {annotations[INJECTED_KEY]})")
    if NAME not in annotations:
        hints = missed_trigger(template)
        if hints:
            return _say(verdict, MISSED, f"not injected: no {NAME} annotation where the webhook reads it", hints)
        at = " or ".join(f"{template.text(p)}.annotations" for p in _annotation_homes(template))
        return _say(verdict, NOT_ASKED, f"not injected: no {NAME} annotation on the pod template",
                    [f"add {NAME}: <model> to {at} to ask for a model"])
    try:
        mutated, plan = mutate_pod(pod, ns, policies)
    except Denied as err:
        who = "it would be denied" if not where else "its pods would be denied"
        return _say(verdict, DENIED, f"{who}: {err}")
    if mutated is None or plan is None:
        return _say(verdict, SKIPPED, "left as it is (it carries our volume already)")
    verdict.injected = plan.marker.value
    _say(verdict, INJECTED, (
        f"injected: model {plan.model.name} ("
        + (f"revision {plan.model.revision}, " if plan.model.has_revisions else "")
        + f"{plan.model.spec.size}) from "
        f"{plan.model.policy_file}, strategy {plan.strategy.name}, mounted read-only at {plan.mount_path} in "
        f"{', '.join(plan.targets)}" + ("" if plan.preload or not plan.strategy.downloads
                                         else ", no downloader (preload off)")
    ))
    verdict.warnings = review_template(pod, ns, policies, facts).warnings
    if nodes is not None and plan.strategy.node_local:
        selector = _mapping(_mapping(pod.get("spec")).get("nodeSelector"))
        candidates, holders = candidates_holding(nodes, selector, plan.model.name, plan.model.revision)
        verdict.placement = holders_line(candidates, holders, plan.model.name, plan.model.revision)
    return verdict


def _say(verdict: Verdict, outcome: str, summary: str, hints: list[str] | None = None) -> Verdict:
    verdict.outcome, verdict.summary, verdict.hints = outcome, summary, hints or []
    return verdict


def _annotation_homes(template: PodTemplate) -> tuple[Path, ...]:
    """Where an author writes the pod's annotations, most specific first."""
    return tuple(reversed(template.read))


def missed_trigger(template: PodTemplate) -> list[str]:
    """Why TEMPLATE looks meant for model-cache although the webhook would never
    see it ask: a misspelled trigger, the trigger as a label, or on metadata that
    never reaches the pods. Empty when nothing looks like ours."""
    hints = []
    for path in template.read:
        meta = _mapping(dig(template.owner, path))
        at = template.text(path)
        for key, ours, distance in near_misses(_mapping_keys(meta.get("annotations"))):
            hints.append(f"{at}.annotations has {key!r}: did you mean {ours!r}? (edit distance {distance})")
        labels = _mapping_keys(meta.get("labels"))
        for key, ours, _ in near_misses(labels):
            hints.append(f"{at}.labels has {key!r}: {ours!r} must be an annotation, not a label")
        if NAME in labels:
            hints.append(f"{at}.labels has {NAME!r}: it must be an annotation, not a label")
    home = template.text(_annotation_homes(template)[0])
    for path in template.ignored:
        keys = _mapping_keys(_mapping(dig(template.owner, path)).get("annotations"))
        at = template.text(path)
        if NAME in keys:
            hints.append(f"{NAME} is on {at}.annotations, which never reaches the pods: "
                         f"move it to {home}.annotations")
        for key, ours, distance in near_misses(keys):
            hints.append(f"{at}.annotations has {key!r} (like {ours!r}, edit distance {distance}), which never "
                         f"reaches the pods: the webhook reads {home}.annotations")
    return hints
