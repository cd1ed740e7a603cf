"""The grammars of a policy's values, checked the way the API server checks
what they become in a pod: quantities, absolute paths, object names,
environment maps; and the base of every section of a policy. Below the
strategies (whose settings use them) and the policy schema (which gathers
them)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from webhook import quantity

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _check_quantity(value: Any) -> str:
    # YAML reads `size: 1000` as an int; the API server's grammar decides the rest.
    quantity.parse(value)
    return str(value)


def _check_absolute(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path such as /model-cache")
    if any(part == ".." for part in value.split("/")):
        raise ValueError(f"{value!r} must not contain '..'")
    return value.rstrip("/") or "/"


def _check_dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a valid Kubernetes object name (lower case, digits, '-', '.')")
    return value


def _check_env(value: dict[str, str]) -> dict[str, str]:
    bad = [k for k in value if not _ENV_NAME.match(k)]
    if bad:
        raise ValueError(f"invalid environment variable names: {', '.join(bad)}")
    return value


def _env_values_to_str(value: Any) -> Any:
    # YAML reads HF_HUB_OFFLINE: 1 as an int; a container's env value is a string.
    if isinstance(value, dict):
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) if v is not None else "" for k, v in value.items()}
    return value


Quantity = Annotated[str, BeforeValidator(_check_quantity)]
AbsolutePath = Annotated[str, AfterValidator(_check_absolute)]
ObjectName = Annotated[str, AfterValidator(_check_dns_subdomain)]
EnvMap = Annotated[dict[str, str], BeforeValidator(_env_values_to_str), AfterValidator(_check_env)]


class Section(BaseModel):
    """A map of a policy file: unknown keys are errors (a typo never passes in silence)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def setting(kind: str, what: str) -> Any:
    """An optional field of a strategy's settings, with the words docs/policy.md
    shows for it: KIND (its grammar, "absolute path") and WHAT it does."""
    return Field(default=None, description=what, json_schema_extra={"kind": kind})
