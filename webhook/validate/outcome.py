"""What /validate answers: allowed or a denial, and the warnings with the rule
behind each (the server counts them by rule)."""

from __future__ import annotations

from dataclasses import dataclass, field

from webhook.facts.finding import Finding
from webhook.validate.warnings import limit_findings


@dataclass
class ValidationOutcome:
    allowed: bool = True
    message: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [f.text for f in self.findings]


def outcome(denial: str | None, findings: list[Finding]) -> ValidationOutcome:
    """A denial, or the findings within Kubernetes' limits on warnings."""
    if denial is not None:
        return ValidationOutcome(allowed=False, message=denial)
    return ValidationOutcome(findings=limit_findings(findings))
