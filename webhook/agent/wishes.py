"""What the policies ask of this node's agent: the models it keeps warm (a
model's `prewarm.nodeSelector` matches the node's labels) and the models
whose directories it prepares, among those stored under its cache root."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from webhook.errors import PolicyError
from webhook.policy.files import file_namespace, parse_policy, policy_files
from webhook.policy.resolved import ResolvedModel, builtin_defaults, merge_defaults
from webhook.policy.schema import ModelCachePolicy
from webhook.vocabulary import DEFAULT_POLICY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wishes:
    prewarm: tuple[ResolvedModel, ...]   # one per model@revision, first policy file wins
    models: frozenset[str]               # hostpath models under this root, for preparation

    @property
    def prewarmed(self) -> frozenset[tuple[str, str]]:
        return frozenset((m.name, m.revision) for m in self.prewarm)


def load_policies(directory: Path) -> dict[str, ModelCachePolicy]:
    """Every policy file in DIRECTORY that parses (see `parse_policies`)."""
    texts: dict[str, str | bytes] = {}
    for path in policy_files(directory):
        try:
            texts[path.name] = path.read_bytes()
        except OSError as err:
            log.warning("policy %s left out: %s", path.name, err)
    return parse_policies(texts)


def parse_policies(texts: Mapping[str, str | bytes]) -> dict[str, ModelCachePolicy]:
    """Every policy file (name -> text, as a ConfigMap's data) that parses; a
    bad one is logged and left out (the webhook reports it; the agent keeps
    serving the others)."""
    out: dict[str, ModelCachePolicy] = {}
    for name in sorted(texts):
        if not name.endswith((".yaml", ".yml")) or "/" in name:
            continue
        try:
            out[file_namespace(name)] = parse_policy(texts[name], name)
        except PolicyError as err:
            log.warning("policy %s left out: %s", name, err)
    return out


def wishes(policies: Mapping[str, ModelCachePolicy], root: Path, node_labels: Mapping[str, str],
           downloader_image: str | None = None) -> Wishes:
    """Pure: the models of POLICIES that live under ROOT (their hostPath path)
    with strategy hostpath, and those of them this node keeps warm."""
    base = builtin_defaults(downloader_image)
    fallback = policies.get(DEFAULT_POLICY)
    prewarm: dict[tuple[str, str], ResolvedModel] = {}
    models: set[str] = set()
    for namespace in sorted(policies):
        layers = [fallback.defaults if fallback else None,
                  policies[namespace].defaults if namespace != DEFAULT_POLICY else None]
        defaults = merge_defaults(*layers, base=base)
        if str(defaults.hostPath.path).rstrip("/") != str(root).rstrip("/"):
            continue
        for name, spec in policies[namespace].models.items():
            model = ResolvedModel(name=name, namespace=namespace, spec=spec, defaults=defaults,
                                  policy_file=f"{namespace}.yaml")
            if model.strategy != "hostpath" and spec.prewarm is None:
                continue
            models.add(name)
            selector = spec.prewarm.nodeSelector if spec.prewarm else None
            if selector and all(node_labels.get(k) == v for k, v in selector.items()):
                prewarm.setdefault((name, model.revision), model)
    return Wishes(tuple(prewarm.values()), frozenset(models))
