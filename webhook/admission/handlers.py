"""The pure handlers: one checked AdmissionReview request in, one Answer out.
No Flask, no metrics, no files: the server records what the Answer says.

Warn-only mode (`serve --warn-only`) lets a platform team roll the webhook out
gradually, as Kyverno's Audit and Gatekeeper's dryrun do: what would be denied
is allowed, unchanged, with the denial as a warning (and counted by the server).
"""

from __future__ import annotations

from typing import Any

from webhook.admission.envelope import Answer, allowed, denied, patched, skipped, would_deny
from webhook.admission.patch import json_patch
from webhook.admission.validating import review, review_pod
from webhook.errors import Denied
from webhook.facts import marker
from webhook.facts.cluster import FactsSource
from webhook.facts.use import describe
from webhook.mutate import ModelResolver, after_native_sidecars, mutate_pod
from webhook.objects import annotations_of, namespace_of, validated_at_apply
from webhook.validate.integrity import broken_injection
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


def _deny(uid: str, message: str, warn_only: bool) -> Answer:
    if warn_only:
        return would_deny(uid, clean_warning(WARN_ONLY_PREFIX + message))
    return denied(uid, message)


def answer_mutation(request: dict[str, Any], policies: ModelResolver, facts: FactsSource | None = None,
                    warn_only: bool = False, checks: bool = True) -> Answer:
    """The answer to one mutating review. FACTS, where given, let a strategy deny
    what cannot work in the pod's namespace (hostpath where Pod Security forbids
    hostPath), with the fix. A pod made by a controller whose workload was
    checked at apply time never reaches /validate: its warnings come from here
    (the server writes them as Events on the controller); CHECKS=False leaves
    them out (the server's way round a bug in them: advisory, they must not
    cost the pod its injection)."""
    uid = request["uid"]
    if not is_pod_create(request):
        return skipped(uid)
    pod = request["object"]
    namespace = namespace_of(request)
    try:
        mutated, plan = mutate_pod(pod, namespace, policies)
    except Denied as err:
        return _deny(uid, str(err), warn_only)
    if mutated is None or plan is None:
        return _seen_again(uid, pod, namespace, policies, facts, warn_only, checks)
    strategy = plan.strategy
    keys = strategy.admission_lookups(namespace)
    if keys and facts is not None:
        denial = strategy.admission_denial(namespace, facts.gather(keys))
        if denial is not None:
            return _deny(uid, denial, warn_only)
    answer = patched(uid, json_patch(pod, mutated), strategy.name)
    return _warn_for_controller(answer, mutated, namespace, policies, facts) if checks else answer


def _seen_again(uid: str, pod: dict[str, Any], namespace: str, policies: ModelResolver,
                facts: FactsSource | None, warn_only: bool, checks: bool) -> Answer:
    """A pod that carries our marker: one we injected, seen again because a
    later webhook changed it (reinvocationPolicy: IfNeeded), or made from a
    template injected already. Denied if what we injected was broken since;
    else our init containers go back after any native sidecar it appended."""
    mark = marker.read(pod)
    if mark is None:
        return skipped(uid)
    try:
        model = policies.resolve(namespace, mark.model)
    except Denied:
        model = None  # a model gone from the policy: nothing to compare with (/validate warns on a bare pod)
    if model is not None:
        denial = broken_injection(pod, model, describe(pod, model, namespace))
        if denial is not None:
            return _deny(uid, denial, warn_only)
    moved = after_native_sidecars(pod)
    answer = skipped(uid) if moved is None else patched(uid, json_patch(pod, moved), mark.strategy)
    return _warn_for_controller(answer, moved or pod, namespace, policies, facts) if checks else answer


def _warn_for_controller(answer: Answer, pod: dict[str, Any], namespace: str, policies: ModelResolver,
                         facts: FactsSource | None) -> Answer:
    """ANSWER with the warnings /validate would give POD (as ANSWER leaves it),
    for a pod that skips /validate; nobody reads them but the server's Events."""
    if not validated_at_apply(pod):
        return answer
    outcome = review_pod(pod, namespace, policies, facts)
    answer.warnings += outcome.warnings
    answer.rules += [f.rule for f in outcome.findings]
    return answer


def answer_validation(request: dict[str, Any], policies: ModelResolver, facts: FactsSource | None,
                      warn_only: bool = False) -> Answer:
    """The answer to one validating review: warnings, or a denial for what cannot work."""
    uid = request["uid"]
    outcome = review(request, policies, facts)
    if not outcome.allowed:
        return _deny(uid, outcome.message or "", warn_only)
    if outcome.findings:
        return allowed(uid, outcome.warnings, "warned", [f.rule for f in outcome.findings])
    if annotations_of(request.get("object") or {}).get(NAME):
        return allowed(uid)
    return skipped(uid)
