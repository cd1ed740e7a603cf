"""The shared formatter of pydantic errors (webhook/pydantic_errors.py): what
it tells a user to read must exist for someone who installed the chart, who
has the docs pages but no checkout of policies/."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from tests.helpers import REPO
from webhook.pydantic_errors import problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: str


def test_an_unknown_field_points_at_the_policy_reference() -> None:
    try:
        _Strict.model_validate({"size": "1Gi", "sise": "1Gi"})
    except ValidationError as err:
        (message,) = problems(err, "models.m")
    else:
        raise AssertionError("extra='forbid' accepted an unknown field")
    assert message.startswith("models.m.sise: unknown field")
    assert "docs/policy.md" in message and (REPO / "docs" / "policy.md").exists()
    assert "policies/" not in message
