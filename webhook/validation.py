"""Placeholder for the validating half (issue 3): allows everything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ValidationOutcome:
    allowed: bool = True
    message: str | None = None
    warnings: list[str] = field(default_factory=list)


def create_facts_provider() -> Any:
    """Called once per worker when the app is created; None means no cluster lookups."""
    return None


def review(request: dict[str, Any], store: Any, facts: Any) -> ValidationOutcome:
    """`request` is the AdmissionReview's `request` object, already checked to be well formed."""
    return ValidationOutcome()
