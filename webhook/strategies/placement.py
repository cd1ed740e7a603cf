"""Cache-aware placement for strategies whose cache is the node's own
(hostpath): a preferred node affinity toward the nodes whose agent reports the
model at the pinned revision (the label webhook/inventory.py names), with the
policy's weight; a required one for a model the policy prewarms with
`required: true`. Added to the pod's own affinity, never in place of it. Pure."""

from __future__ import annotations

from typing import Any

PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def add_cache_affinity(spec: dict[str, Any], label: str, weight: int, required: bool = False) -> None:
    """Changes SPEC (a pod spec, already a copy) in place: nodes with LABEL
    preferred with WEIGHT (0: not at all), or REQUIRED."""
    if not weight and not required:
        return
    expression = {"key": label, "operator": "Exists"}
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
