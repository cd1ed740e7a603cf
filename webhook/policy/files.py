"""Reading policy files: one file's text into a ModelCachePolicy or every
problem as `file: field.path: what is expected`; the files of a directory."""

from __future__ import annotations

import difflib
import re
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from webhook.errors import PolicyError
from webhook.pydantic_errors import describe
from webhook.policy.schema import ModelCachePolicy
from webhook.vocabulary import DEFAULT_POLICY, POLICY_API_VERSION, POLICY_KIND

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def file_namespace(filename: str) -> str:
    """The namespace a policy file serves: its name without .yaml or .yml."""
    stem = filename.rsplit("/", 1)[-1]
    for ext in (".yaml", ".yml"):
        if stem.endswith(ext):
            return stem[: -len(ext)]
    return stem


def parse_policy(text: str | bytes, filename: str) -> ModelCachePolicy:
    """Parses one policy file's text; raises PolicyError listing every problem."""
    namespace = file_namespace(filename)
    if namespace != DEFAULT_POLICY and (len(namespace) > 63 or not _DNS_LABEL.match(namespace)):
        raise PolicyError(filename, [f"file name must be <namespace>.yaml or {DEFAULT_POLICY}.yaml; {namespace!r} is not a namespace name"])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise PolicyError(filename, [f"not valid YAML: {where}{problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(filename, [f"expected a mapping with apiVersion: {POLICY_API_VERSION} and kind: {POLICY_KIND}, got {type(data).__name__}"])
    try:
        return ModelCachePolicy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(filename, [_describe(e) for e in err.errors(include_url=False)]) from None


def _describe(error: ErrorDetails) -> str:
    """One problem of a policy file; an unknown field gets the closest known one
    and the fields that fit there, since a chart user has no example file to look at."""
    if error["type"] != "extra_forbidden":
        return describe(error)
    *parent, key = error["loc"]
    where = ".".join(str(p) for p in error["loc"])
    known = fields_at(ModelCachePolicy, tuple(parent))
    if not known:
        return f"{where}: unknown field"
    # Case-blind, so that `Downloader` finds `downloader`.
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(key).lower(), list(by_lower), n=1, cutoff=0.6)
    guess = f"did you mean {by_lower[close[0]]!r}? " if close else ""
    return f"{where}: unknown field; {guess}fields here: {', '.join(known)}"


def fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the schema object at LOC (a pydantic error location
    such as ("models", "llama", "pvc")), or [] where LOC is not an object."""
    annotation: Any = model
    for step in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(step))
            if info is None:
                return []
            annotation = info.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """X out of Annotated[X, ...] and X | None."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [m for m in get_args(annotation) if m is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def policy_problems(text: str | bytes, filename: str) -> list[str]:
    """Every problem of one file as `file: field.path: what is expected`; empty if valid."""
    try:
        parse_policy(text, filename)
    except PolicyError as err:
        return [f"{err.file}: {p}" for p in err.problems]
    return []


def policy_files(directory: Path) -> list[Path]:
    # A mounted ConfigMap shows `ns.yaml -> ..data/ns.yaml` plus hidden `..data`
    # and `..<timestamp>` entries: skip anything hidden.
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    return [p for p in entries if not p.name.startswith(".") and p.suffix in (".yaml", ".yml") and p.is_file()]
