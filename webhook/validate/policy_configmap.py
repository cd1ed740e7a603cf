"""A ConfigMap of policy files, checked before it reaches the webhook: denied
with the messages of `model-cache policy check` when a file does not parse."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from webhook.policy import check_texts
from webhook.validate.outcome import ValidationOutcome, outcome
from webhook.facts.finding import Finding
from webhook.vocabulary import POLICY_LABEL

MAX_POLICY_PROBLEMS = 20  # in one denial message; `model-cache policy check` lists them all


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
    parse or names a strategy its namespace forbids, with the messages of
    `model-cache policy check`; its warnings as warnings."""
    meta = configmap.get("metadata") or {}
    if (meta.get("labels") or {}).get(POLICY_LABEL) != "true":
        return ValidationOutcome()
    files, problems = _policy_texts(configmap)
    report = check_texts(dict(files))
    problems += report.errors
    if problems:
        shown = problems[:MAX_POLICY_PROBLEMS]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more: run model-cache policy check on the files")
        return ValidationOutcome(allowed=False, message="\n".join(shown))
    if not files:
        name = meta.get("name") or meta.get("generateName") or "?"
        return outcome(None, [Finding("policy-empty", (
            f"ConfigMap {name} is labelled {POLICY_LABEL}=true but has no <namespace>.yaml key: it holds no policy"
        ))])
    return outcome(None, [Finding("policy-inherited-strategy", w) for w in report.warnings])
