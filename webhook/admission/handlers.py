"""The pure handlers: one checked AdmissionReview request in, one Answer out.
No Flask, no metrics, no files: the server records what the Answer says.

Warn-only mode (`serve --warn-only`) lets a platform team roll the webhook out
gradually, as Kyverno's Audit and Gatekeeper's dryrun do: what would be denied
is allowed, unchanged, with the denial as a warning (and counted by the server).
"""

from __future__ import annotations

from typing import Any

from webhook.admission.patch import json_patch
from webhook.admission.review import Answer
from webhook.admission.validating import review
from webhook.errors import Denied
from webhook.facts import marker
from webhook.facts.cluster import FactsSource
from webhook.mutate import ModelResolver, after_native_sidecars, mutate_pod
from webhook.objects import annotations_of, namespace_of
from webhook.validate.warnings import clean_warning
from webhook.vocabulary import NAME


WARN_ONLY_PREFIX = "model-cache (warn-only) would deny this pod: "


def is_pod_create(request: dict[str, Any]) -> bool:
    kind = request.get("kind") or {}
    return (
        kind.get("kind") == "Pod"
        and kind.get("group", "") == ""
        and request.get("operation") == "CREATE"
        and not request.get("subResource")
    )


def _deny(answer: Answer, message: str, warn_only: bool) -> Answer:
    if warn_only:
        answer.warnings.append(clean_warning(WARN_ONLY_PREFIX + message))
        answer.rules.append("warn-only-denial")
        answer.result, answer.would_deny = "warn-only", True
    else:
        answer.allowed, answer.message, answer.code, answer.result = False, message, 403, "denied"
    return answer


def answer_mutation(request: dict[str, Any], policies: ModelResolver, facts: FactsSource | None = None,
                    warn_only: bool = False) -> Answer:
    """The answer to one mutating review. FACTS, where given, let a strategy deny
    what cannot work in the pod's namespace (hostpath where Pod Security forbids
    hostPath), with the fix."""
    answer = Answer(uid=request["uid"])
    if not is_pod_create(request):
        return answer
    pod = request["object"]
    namespace = namespace_of(request)
    try:
        mutated, plan = mutate_pod(pod, namespace, policies)
    except Denied as err:
        return _deny(answer, str(err), warn_only)
    if mutated is None or plan is None:
        return _sidecars_first(answer, pod)
    strategy = plan.strategy
    keys = strategy.admission_lookups(namespace)
    if keys and facts is not None:
        denial = strategy.admission_denial(namespace, facts.gather(keys))
        if denial is not None:
            return _deny(answer, denial, warn_only)
    answer.patch = json_patch(pod, mutated)
    answer.result, answer.strategy = "mutated", plan.strategy.name
    return answer


def _sidecars_first(answer: Answer, pod: dict[str, Any]) -> Answer:
    """A pod we injected before, seen again because a later webhook changed
    it: our init containers back after any native sidecar it appended."""
    mark = marker.read(pod)
    moved = after_native_sidecars(pod) if mark is not None else None
    if moved is not None:
        answer.patch = json_patch(pod, moved)
        answer.result, answer.strategy = "mutated", mark.strategy
    return answer


def answer_validation(request: dict[str, Any], policies: ModelResolver, facts: FactsSource | None,
                      warn_only: bool = False) -> Answer:
    """The answer to one validating review: warnings, or a denial for what cannot work."""
    answer = Answer(uid=request["uid"])
    outcome = review(request, policies, facts)
    answer.warnings = outcome.warnings
    answer.rules = [f.rule for f in outcome.findings]
    if not outcome.allowed:
        return _deny(answer, outcome.message or "", warn_only)
    if outcome.findings:
        answer.result = "warned"
    elif annotations_of(request.get("object") or {}).get(NAME):
        answer.result = "allowed"
    return answer
