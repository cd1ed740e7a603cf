"""The validating review (`POST /validate`), orchestrated: the pod as the
mutation gives it, described, its cluster facts gathered, the rules of
validate/ run. Here, above both mutate/ and validate/, because a template is
checked as the mutation would make its pods.

A Pod is checked as it arrives (the mutating webhook ran before). A workload's
pod template (Deployment, StatefulSet, ...) is checked so that whoever applies
it sees the warnings at `kubectl apply` time: the real mutation runs on the
template, the same pure function as /mutate and `inject -f`, and its output
is described, so that a template whose pods will be denied says so now.
Pure but for the policy lookups and the facts source passed in.
"""

from __future__ import annotations

from typing import Any, Mapping

from webhook.errors import Denied
from webhook.facts import marker
from webhook.facts.cluster import ClusterFacts, FactsSource
from webhook.facts.finding import Finding
from webhook.facts.use import CacheUse, describe
from webhook.mutate import ModelResolver, mutate_pod
from webhook.objects import annotations_of, dig, namespace_of
from webhook.validate import rules
from webhook.validate.integrity import broken_injection
from webhook.validate.outcome import ValidationOutcome, outcome
from webhook.validate.policy_configmap import review_policy_configmap
from webhook.vocabulary import MIRROR, NAME, TEMPLATE_PATHS


def review(request: dict[str, Any], policies: ModelResolver, facts: FactsSource | None) -> ValidationOutcome:
    """`request` is the AdmissionReview's `request` object, its shape already checked."""
    kind = (request.get("kind") or {}).get("kind")
    operation = request.get("operation", "CREATE")
    obj = request.get("object")
    if operation not in ("CREATE", "UPDATE") or not isinstance(obj, dict) or request.get("subResource"):
        return ValidationOutcome()  # pods/status, pods/ephemeralcontainers...: not a new pod
    if kind == "ConfigMap":
        return review_policy_configmap(obj)
    namespace = namespace_of(request)
    if kind == "Pod":
        if operation != "CREATE":  # a pod's spec is immutable: it was checked at creation
            return ValidationOutcome()
        return review_pod(obj, namespace, policies, facts)
    path = TEMPLATE_PATHS.get(kind or "")
    if path is None:
        return ValidationOutcome()
    template = dig(obj, path)
    if not isinstance(template, dict):
        return ValidationOutcome()
    if operation == "UPDATE" and dig(request.get("oldObject") or {}, path) == template:
        return ValidationOutcome()  # a scale or a label change: nothing new to say
    return review_template(template, namespace, policies, facts)


def _asks_for_a_model(pod: Mapping[str, Any]) -> bool:
    annotations = annotations_of(pod)
    return bool((annotations.get(NAME) or "").strip()) and MIRROR not in annotations


def review_pod(pod: dict[str, Any], namespace: str, policies: ModelResolver,
               facts: FactsSource | None) -> ValidationOutcome:
    """A Pod being created: the mutating webhook has run (or failed open)."""
    if not _asks_for_a_model(pod):
        return ValidationOutcome()
    mark = marker.read(pod)
    if mark is None:
        # model.cache/name but no marker: the mutating webhook failed open or does
        # not cover this namespace. Say so, and what the mutation would have said.
        missed = Finding("not-injected", (
            f"model {annotations_of(pod)[NAME].strip()} was not injected by the model-cache mutating webhook: "
            "nothing is mounted; check that webhook"
        ))
        predicted = review_template(pod, namespace, policies, facts)
        return outcome(None, [missed, *predicted.findings])
    try:
        model = policies.resolve(namespace, mark.model)  # what was mounted wins over what was asked
    except Denied:
        return outcome(None, [Finding("model-unknown", (
            f'model "{mark.model}" is not in the model-cache policy for namespace {namespace}: checks skipped'
        ))])
    use = describe(pod, model, namespace)
    denial = broken_injection(pod, model, use)
    if denial is not None:  # no lookups for a pod that is refused anyway
        return outcome(denial, [])
    result = rules.run_checks(use, model, gather(use, facts))
    return outcome(None, list(result.findings))


def review_template(template: dict[str, Any], namespace: str, policies: ModelResolver,
                    facts: FactsSource | None) -> ValidationOutcome:
    """A workload's pod template: never denied (its pods are checked when they
    are created), but warned about everything its pods will meet."""
    if not _asks_for_a_model(template):
        return ValidationOutcome()
    try:
        mutated, plan = mutate_pod(template, namespace, policies)
    except Denied as err:
        return outcome(None, [Finding("will-be-denied", f"its pods will be denied by model-cache: {err}")])
    if mutated is not None and plan is not None:
        pod, model = mutated, plan.model
    else:  # left as it is: a template that carries our marker already
        pod = template
        mark = marker.read(pod)
        if mark is None:
            return ValidationOutcome()
        try:
            model = policies.resolve(namespace, mark.model)
        except Denied:
            return ValidationOutcome()
    use = describe(pod, model, namespace)
    result = rules.run_checks(use, model, gather(use, facts), template=True)
    return outcome(None, list(result.findings))


def gather(use: CacheUse, facts: FactsSource | None) -> ClusterFacts:
    keys = rules.lookups_for(use)
    if facts is None or not keys:
        return ClusterFacts()
    found = facts.gather(keys.values())
    return ClusterFacts(**{name: found.get(key) for name, key in keys.items()})
