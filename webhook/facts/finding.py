"""One thing the validating half has to say about a pod: the rule that said
it (a metric label, a docs anchor) and the text kubectl shows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    rule: str
    text: str
