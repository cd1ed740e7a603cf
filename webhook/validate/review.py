"""The validating half (`POST /validate`): warnings on the final pod, a denial for
what cannot work, and policy ConfigMaps checked before they reach the webhook.

app.py calls `create_facts_provider()` once per worker and `review()` per request.
The rules are in checks.py (pure), the cluster lookups in cluster.py.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from webhook import checks, metrics
from webhook.checks import ClusterFacts, Finding
from webhook.cluster import FactsProvider, LookupKey, Settings, load_configuration
from webhook.errors import Denied
from webhook.policy import PolicyStore, policy_problems

log = logging.getLogger(__name__)

POLICY_LABEL = "model.cache/policy"
MAX_POLICY_PROBLEMS = 20  # in one denial message; `model-cache policy check` lists them all

# Workloads whose pod template is checked, so that kubectl shows the warnings to
# whoever applies the Deployment (its pods are created by a controller, whose
# warnings nobody reads). Path to the template in each.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass
class ValidationOutcome:
    allowed: bool = True
    message: str | None = None
    warnings: list[str] = field(default_factory=list)


def create_facts_provider() -> FactsProvider | None:
    """Called once per worker when the app is created; None means no cluster lookups
    (no in-cluster config, MODEL_CACHE_KUBECONFIG, KUBECONFIG or ~/.kube/config):
    the checks that need the cluster are then skipped without a warning."""
    configuration = load_configuration()
    if configuration is None:
        return None
    settings = Settings.from_env()
    log.info("cluster checks on: %s (budget %gs, ttl %gs)", configuration.host, settings.budget, settings.ttl)
    return FactsProvider(configuration, settings)


def review(request: dict[str, Any], store: PolicyStore, facts: FactsProvider | None) -> ValidationOutcome:
    """`request` is the AdmissionReview's `request` object, already checked to be well formed."""
    kind = (request.get("kind") or {}).get("kind")
    operation = request.get("operation", "CREATE")
    obj = request.get("object")
    if operation not in ("CREATE", "UPDATE") or not isinstance(obj, dict) or request.get("subResource"):
        return ValidationOutcome()  # pods/status, pods/ephemeralcontainers...: not a new pod
    if kind == "ConfigMap":
        return review_policy_configmap(obj)
    namespace = _namespace(request)
    if kind == "Pod":
        if operation != "CREATE":  # a pod's spec is immutable: it was checked at creation
            return ValidationOutcome()
        return _review_pod(obj, namespace, store, facts, template=False)
    path = TEMPLATE_PATHS.get(kind or "")
    if path is None:
        return ValidationOutcome()
    template = _dig(obj, path)
    if not isinstance(template, dict):
        return ValidationOutcome()
    if operation == "UPDATE" and _dig(request.get("oldObject") or {}, path) == template:
        return ValidationOutcome()  # a scale or a label change: nothing new to say
    return _review_pod(template, namespace, store, facts, template=True)


def _namespace(request: Mapping[str, Any]) -> str:
    return request.get("namespace") or ((request.get("object") or {}).get("metadata") or {}).get("namespace") or "default"


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _review_pod(pod: dict[str, Any], namespace: str, store: PolicyStore, facts: FactsProvider | None,
                template: bool) -> ValidationOutcome:
    annotations = checks.annotations_of(pod)
    name = (annotations.get(checks.NAME) or "").strip()
    if not name or checks.MIRROR in annotations:
        return ValidationOutcome()
    marker = checks.injected_strategy(annotations)
    model_name = marker[1] if marker else name  # what was mounted wins over what was asked
    try:
        model = store.resolve(namespace, model_name)
    except Denied:
        text = (
            f'model "{model_name}" is not in the model-cache policy for namespace {namespace}: '
            + ("checks skipped" if marker else "its pods will be denied; fix model.cache/name")
        )
        return _outcome(None, [Finding("model-unknown", text)])

    use = checks.describe(pod, model, namespace)
    if not template:
        denial = checks.denial_for(use)
        if denial is not None:  # no lookups for a pod that is refused anyway
            return _outcome(denial, [])
    cluster = _gather(use, facts)
    result = checks.run_checks(use, model, cluster, template=template)
    return _outcome(result.denial, list(result.findings))


def lookups_for(use: checks.CacheUse) -> dict[str, LookupKey]:
    """The cluster facts the rules need for USE, by ClusterFacts field."""
    keys: dict[str, LookupKey] = {}
    if use.pvc_name:
        keys["pvc"] = LookupKey("pvc", use.namespace, use.pvc_name)
    if use.secret_name:
        keys["secret"] = LookupKey("secret", use.namespace, use.secret_name)
    if use.strategy == "hostpath":
        keys["namespace"] = LookupKey("namespace", use.namespace, use.namespace)
    return keys


def _gather(use: checks.CacheUse, facts: FactsProvider | None) -> ClusterFacts:
    keys = lookups_for(use)
    if facts is None or not keys:
        return ClusterFacts()
    found = facts.gather(keys.values())
    return ClusterFacts(**{name: found.get(key) for name, key in keys.items()})


def _outcome(denial: str | None, findings: list[Finding]) -> ValidationOutcome:
    if denial is not None:
        return ValidationOutcome(allowed=False, message=denial)
    kept = checks.limit_findings(findings)
    for f in kept:
        metrics.WARNINGS.labels(rule=f.rule).inc()
    return ValidationOutcome(warnings=[f.text for f in kept])


# --- policy ConfigMaps ----------------------------------------------------------------


def _policy_texts(configmap: Mapping[str, Any]) -> tuple[list[tuple[str, str | bytes]], list[str]]:
    """(file name, text) of every .yaml/.yml key, and problems decoding binaryData."""
    files: list[tuple[str, str | bytes]] = []
    problems: list[str] = []
    for key, value in sorted((configmap.get("data") or {}).items()):
        if key.endswith((".yaml", ".yml")):
            files.append((key, value if isinstance(value, str) else ""))
    for key, value in sorted((configmap.get("binaryData") or {}).items()):
        if key.endswith((".yaml", ".yml")):
            try:
                files.append((key, base64.b64decode(value, validate=True)))
            except (binascii.Error, TypeError, ValueError):
                problems.append(f"{key}: binaryData is not base64")
    return files, problems


def review_policy_configmap(configmap: Mapping[str, Any]) -> ValidationOutcome:
    """A ConfigMap labelled model.cache/policy=true: denied if a policy in it does not
    parse, with the messages of `model-cache policy check`."""
    meta = configmap.get("metadata") or {}
    if (meta.get("labels") or {}).get(POLICY_LABEL) != "true":
        return ValidationOutcome()
    files, problems = _policy_texts(configmap)
    for filename, text in files:
        problems.extend(policy_problems(text, filename))
    if problems:
        shown = problems[:MAX_POLICY_PROBLEMS]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more: run model-cache policy check on the files")
        return ValidationOutcome(allowed=False, message="\n".join(shown))
    if not files:
        name = meta.get("name") or meta.get("generateName") or "?"
        return _outcome(None, [Finding("policy-empty", (
            f"ConfigMap {name} is labelled {POLICY_LABEL}=true but has no <namespace>.yaml key: it holds no policy"
        ))])
    return ValidationOutcome()
