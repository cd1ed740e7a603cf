"""`model-cache inject -f FILE`: objects as the webhook would change them.

For GitOps and CI: the same decision as /mutate, applied to Pods, to the pod
templates of workload objects and to KServe predictors, printed as
multi-document YAML (or a JSON List). A template that cannot be injected as
its author meant (denied, a misspelled trigger, the trigger in the wrong place)
is an error: every one is named on stderr, nothing is printed, exit 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.admission.shapes import pod_problem
from webhook.cli.output import emit
from webhook.errors import EXIT_FINDINGS, Denied, UsageError
from webhook.explain import missed_trigger
from webhook.mutate import mutate_pod
from webhook.objects import PodTemplate, pod_templates
from webhook.policy import PolicyStore
from webhook.vocabulary import INJECTED, NAME, POLICIES_ENV


@dataclass
class Injection:
    """What became of one pod template."""

    subject: str  # "Deployment llm/dep (spec.template)"
    injected: str | None = None  # the model.cache/injected value, None when left as it is
    problem: str | None = None  # why it cannot be injected as meant


def _describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', 'object')} {(obj.get('metadata') or {}).get('name', '(unnamed)')}"


def inject_object(obj: dict[str, Any], store: PolicyStore, namespace: str | None) -> list[Injection]:
    """Mutates OBJ's pods in place, as the webhook would at their creation."""
    return [_inject(t, store, namespace) for t in pod_templates(obj)]


def _inject(template: PodTemplate, store: PolicyStore, namespace: str | None) -> Injection:
    owner = template.owner
    ns = (owner.get("metadata") or {}).get("namespace") or namespace or "default"
    name = f"{owner.get('kind', 'object')} {ns}/{(owner.get('metadata') or {}).get('name', '(unnamed)')}"
    done = Injection(f"{name} ({template.where})" if template.where else name)
    pod = template.pod
    if pod is None:
        done.problem = f"{_describe(owner)}: {template.where} is not an object"
        return done
    problem = pod_problem(pod, template.where)
    if problem is not None:
        done.problem = f"{_describe(owner)}: {problem}"
        return done
    if NAME not in ((pod.get("metadata") or {}).get("annotations") or {}):
        hints = missed_trigger(template)
        if hints:
            done.problem = (f"{_describe(owner)}: not injected, no {NAME} where the webhook reads it: "
                            + "; ".join(hints))
        return done
    try:
        mutated, _ = mutate_pod(pod, ns, store)
    except Denied as err:
        done.problem = f"{_describe(owner)} in namespace {ns}: denied: {err}"
        return done
    if mutated is not None:
        template.replace(mutated)
        done.injected = ((mutated.get("metadata") or {}).get("annotations") or {}).get(INJECTED)
    return done


def load_store(policies: Path, downloader_image: str | None = None) -> PolicyStore:
    if not policies.is_dir():
        raise UsageError(f"policy directory {policies} not found; pass --policies DIR, set {POLICIES_ENV}=DIR, "
                         "or read the cluster's with --from-cluster")
    store = PolicyStore(policies, downloader_image=downloader_image)
    ok, why = store.readiness()
    if not ok:
        raise UsageError(f"{why}; `model-cache policy check {policies}` says what to fix")
    return store


def _summary(injections: list[Injection]) -> str:
    return "\n".join(f"{i.subject}: " + (f"injected {i.injected}" if i.injected else "left as it is")
                     for i in injections)


def run_inject(docs: list[dict[str, Any]], namespace: str, store: PolicyStore, output: str = "yaml") -> int:
    injections = [i for doc in docs for i in inject_object(doc, store, namespace)]
    problems = [i.problem for i in injections if i.problem]
    if problems:
        for problem in problems:
            print(f"model-cache: {problem}", file=sys.stderr)
        return EXIT_FINDINGS
    if output == "yaml":
        yaml.safe_dump_all(docs, sys.stdout, sort_keys=False, default_flow_style=False)
    else:
        # kubectl's shape for several objects; `kubectl apply -f` takes it as it is.
        emit({"apiVersion": "v1", "kind": "List", "items": docs}, output, lambda: _summary(injections))
    return 0
