"""Kubernetes' limits on AdmissionResponse.warnings (k8s.io/apiserver warning
recorder): each is cut past 256 characters, all are dropped past 4096 bytes."""

from __future__ import annotations

import re

from webhook.facts.finding import Finding

MAX_WARNING_CHARS = 256
MAX_WARNINGS_BYTES = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_warning(text: str) -> str:
    """One line of printable text within MAX_WARNING_CHARS (the API server would cut it)."""
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > MAX_WARNING_CHARS:
        text = text[: MAX_WARNING_CHARS - 3].rstrip() + "..."
    return text


def limit_findings(findings: list[Finding] | tuple[Finding, ...]) -> list[Finding]:
    """Deduplicated (first wins), each cleaned, all together within MAX_WARNINGS_BYTES;
    what does not fit is counted in a last warning rather than silently dropped."""
    seen: set[str] = set()
    unique: list[Finding] = []
    for f in findings:
        text = clean_warning(f.text)
        if text and text not in seen:
            seen.add(text)
            unique.append(Finding(f.rule, text))
    kept: list[Finding] = []
    used = 0
    reserve = 64  # room for the "N more" line
    for i, f in enumerate(unique):
        size = len(f.text.encode("utf-8"))
        last = i == len(unique) - 1
        if used + size <= MAX_WARNINGS_BYTES - (0 if last else reserve):
            kept.append(f)
            used += size
        else:
            rest = len(unique) - len(kept)
            kept.append(Finding("truncated", f"{rest} more model-cache warnings not shown; see the webhook log"))
            break
    return kept
