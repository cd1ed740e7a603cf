"""What a node holds, as the agent publishes it on its Node and as the webhook,
`status` and `explain` read it back: the one home of the label keys and the
detail annotation. Pure.

Labels (for the scheduler): one per model@revision the node's cache holds
complete, `cache.model.cache/<slug>-<digest>`, value `verified` (every file
checked against a checksum) or `unverified` (sizes only). A label name has at
most 63 characters of [A-Za-z0-9._-] and must start and end with a letter or
digit; a model name and a 40-character revision do not always fit, so the
name keeps a readable slug of the model and a digest of model@revision that
tells any two apart.

Annotation `model.cache/inventory` (for people and tools): a JSON list of
{model, revision, size, verified, lastUsed, prewarmed} in model order.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

LABEL_PREFIX = "cache.model.cache/"
INVENTORY_ANNOTATION = "model.cache/inventory"
VERIFIED, UNVERIFIED = "verified", "unverified"
_NAME_MAX = 63
_DIGEST = 10
_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def label_key(model: str, revision: str) -> str:
    """The Node label that says the node holds MODEL at REVISION (the cache
    directory's name: the pinned revision, or `main`)."""
    digest = hashlib.sha256(f"{model}@{revision}".encode()).hexdigest()[:_DIGEST]
    slug = _EDGE.sub("", _BAD.sub("-", model))[: _NAME_MAX - _DIGEST - 1]
    slug = _EDGE.sub("", slug)
    return f"{LABEL_PREFIX}{slug}-{digest}" if slug else f"{LABEL_PREFIX}{digest}"


def is_ours(key: str) -> bool:
    return key.startswith(LABEL_PREFIX) or key == INVENTORY_ANNOTATION


@dataclass(frozen=True)
class Holding:
    """One complete model on one node."""

    model: str
    revision: str
    size: int
    verified: bool
    lastUsed: str  # RFC 3339, UTC: the marker's mtime (the downloader's fast path touches it)
    prewarmed: bool = False

    @property
    def label(self) -> str:
        return label_key(self.model, self.revision)


def node_labels(holdings: list[Holding]) -> dict[str, str]:
    return {h.label: VERIFIED if h.verified else UNVERIFIED for h in holdings}


def node_patch(current_labels: Mapping[str, str], holdings: list[Holding]) -> dict[str, Any]:
    """The merge patch that makes a Node's labels and annotation say HOLDINGS:
    our labels set or removed (null), nobody else's touched."""
    want = node_labels(holdings)
    labels: dict[str, str | None] = {k: None for k in current_labels if k.startswith(LABEL_PREFIX) and k not in want}
    labels.update({k: v for k, v in want.items() if current_labels.get(k) != v})
    annotation = json.dumps([asdict(h) for h in sorted(holdings, key=lambda h: (h.model, h.revision))],
                            separators=(",", ":"))
    return {"metadata": {"labels": labels, "annotations": {INVENTORY_ANNOTATION: annotation}}}


def read_holdings(annotations: Mapping[str, str] | None) -> list[Holding]:
    """The holdings a Node's annotation states; [] when it has none or it does not parse."""
    try:
        items = json.loads((annotations or {}).get(INVENTORY_ANNOTATION) or "[]")
        return [Holding(**item) for item in items]
    except (ValueError, TypeError):
        return []


@dataclass(frozen=True)
class NodeView:
    """A Node as `status` and `explain` read it: name, labels, what it holds."""

    name: str
    labels: Mapping[str, str]
    holdings: tuple[Holding, ...]
    schedulable: bool = True


def node_view(node: Mapping[str, Any]) -> NodeView:
    """From a Node as the API server sends it (a plain dict)."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    tainted = any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])
    return NodeView(metadata.get("name", ""), dict(metadata.get("labels") or {}),
                    tuple(read_holdings(metadata.get("annotations"))),
                    schedulable=not spec.get("unschedulable") and not tainted)


def candidates_holding(nodes: list[NodeView], node_selector: Mapping[str, str], model: str,
                       revision: str) -> tuple[list[str], list[str]]:
    """The schedulable nodes that match NODE_SELECTOR, and those of them whose
    labels say they hold MODEL@REVISION."""
    key = label_key(model, revision)
    candidates = [n for n in nodes if n.schedulable and all(n.labels.get(k) == v for k, v in node_selector.items())]
    return [n.name for n in candidates], [n.name for n in candidates if key in n.labels]


def holders_line(candidates: list[str], holders: list[str], model: str, revision: str) -> str:
    return f"{len(holders)} of {len(candidates)} candidate nodes hold {model}@{revision}" + (
        f" ({', '.join(holders)})" if holders else "")
