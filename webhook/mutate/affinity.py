"""Cache-aware placement for strategies whose cache is the node's own
(hostpath): a preferred node affinity toward the nodes whose agent reports the
model at the pinned revision (webhook/inventory.py's label), with the policy's
weight; a required one for a model the policy prewarms with `required: true`.
Added to the pod's own affinity, never in place of it. Pure."""

from __future__ import annotations

from typing import Any

from webhook.inventory import label_key
from webhook.policy import ResolvedModel

PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def add_cache_affinity(spec: dict[str, Any], model: ResolvedModel) -> None:
    """Changes SPEC (a pod spec, already a copy) in place."""
    weight = model.defaults.hostPath.cacheAffinityWeight or 0
    required = model.spec.prewarm is not None and model.spec.prewarm.required
    if not weight and not required:
        return
    expression = {"key": label_key(model.name, model.revision), "operator": "Exists"}
    node_affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    if required:
        # Terms are ORed: the expression joins each of the pod's own terms, so
        # every way the pod could be placed now also needs the model.
        terms = node_affinity.setdefault(REQUIRED, {}).setdefault("nodeSelectorTerms", [])
        if not terms:
            terms.append({})
        for term in terms:
            term.setdefault("matchExpressions", []).append(dict(expression))
        return
    node_affinity.setdefault(PREFERRED, []).append({"weight": weight, "preference": {"matchExpressions": [expression]}})
