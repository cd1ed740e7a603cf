"""Reading policy files: one file's text into a ModelCachePolicy or every
problem as `file: field.path: what is expected`; the files of a directory."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from webhook.errors import PolicyError
from webhook.pydantic_errors import problems
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
        raise PolicyError(filename, problems(err)) from None


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
