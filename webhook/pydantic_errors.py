"""Pydantic's validation errors in the words of this project, one line per
problem: `field.path: what is expected (got what)`. One home for the policy
files (policy/files.py) and the AdmissionReview shapes (admission/shapes.py)."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_INSTANCE_OF = re.compile(r" or instance of \w+")
_UNION_MEMBERS = ("str", "int", "float")  # a union member shows in the location as its type's name


def describe(error: ErrorDetails, prefix: str = "") -> str:
    """One problem as `field.path: what is expected`, its location under PREFIX."""
    loc = [p for p in error["loc"] if p not in _UNION_MEMBERS]
    where = ".".join(str(p) for p in (prefix, *loc) if p != "") or "(top level)"
    given = error.get("input")
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "extra_forbidden":
        # A chart user has no checkout: name the published page, not a repo file.
        return f"{where}: unknown field (check the spelling; every field is in docs/policy.md)"
    if kind == "string_type" and isinstance(given, (bool, int, float, type(None))):
        # What YAML does to `preload: false` or `shm-size: 0`: the API server refuses it too.
        shown = json.dumps(given)
        return f'{where}: expected a string, got {shown}; quote the value in YAML: "{shown}"'
    text = f"{where}: {_INSTANCE_OF.sub('', error['msg'].removeprefix('Value error, '))}"
    if kind == "literal_error":
        return f"{text}, got {given!r}"
    if kind != "value_error" and not isinstance(given, (dict, list)):  # our own validators quote the value
        shown = repr(given)
        text += f" (got {shown[:37] + '...' if len(shown) > 40 else shown})"
    return text


def problems(err: ValidationError, prefix: str = "") -> list[str]:
    """Every problem of ERR, described."""
    return [describe(e, prefix) for e in err.errors(include_url=False)]
