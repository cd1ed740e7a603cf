"""docs/policy.md documents every field of the policy schema, and its
examples are valid policies, so that the reference and the code cannot drift
apart."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tests.deploy.render import REPO

DOC = REPO / "docs" / "policy.md"
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))


def policy_schema() -> type[BaseModel]:
    """ModelCachePolicy wherever it lives: the policy module is being split
    into a package (webhook/policy/schema.py), imported late for that reason."""
    for module in ("webhook.policy.schema", "webhook.policy"):
        try:
            return importlib.import_module(module).ModelCachePolicy
        except (ImportError, AttributeError):
            continue
    raise ImportError("ModelCachePolicy not found in webhook.policy.schema or webhook.policy")


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The pydantic models inside a field's type: ("", M) for M or M | None,
    (".<name>", M) for dict[str, M]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict:
        return [(".<name>" + sub, m) for sub, m in _models_in(args[1])]
    found = []
    for arg in args:
        found += _models_in(arg)
    return found


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        for sub, inner in _models_in(info.annotation):
            paths += field_paths(inner, f"{path}{sub}.")
    return paths


def test_the_walk_finds_the_nested_fields() -> None:
    paths = field_paths(policy_schema())
    assert {"apiVersion", "defaults.downloader.runAsUser", "models.<name>.source",
            "defaults.downloader.resources.limits"} <= set(paths)
    assert len(paths) >= 30


def test_every_schema_field_is_documented() -> None:
    text = DOC.read_text()
    missing = [p for p in field_paths(policy_schema()) if f"`{p}`" not in text]
    assert not missing, f"docs/policy.md does not describe: {missing}"


def _examples() -> list[tuple[str, str]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    out = []
    for block in blocks:
        if "kind: ModelCachePolicy" in block:
            first = block.splitlines()[0]
            assert re.fullmatch(r"# [a-z0-9_-]+\.yaml", first), f"name the example's file in its first line: {first!r}"
            out.append((first[2:], block))
    return out


def test_every_example_is_a_valid_policy(tmp_path: Path) -> None:
    examples = _examples()
    assert len(examples) >= 3
    for name, block in examples:
        (tmp_path / name).write_text(block)
    check = subprocess.run([MODEL_CACHE, "policy", "check", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_example_check_does_catch_a_typo(tmp_path: Path) -> None:
    name, block = _examples()[0]
    (tmp_path / name).write_text(block.replace("claimName:", "claimNmae:", 1))
    check = subprocess.run([MODEL_CACHE, "policy", "check", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "claimNmae" in check.stdout + check.stderr
