"""The strategy registry (webhook/strategies/) is the one list of strategies:
the policy schema, the annotation parser and docs/strategies.md read it.

docs/strategies.md and docs/policy.md hold a block generated from the registry
(the strategies; their settings); after an intended change, UPDATE_DOCS=1
rewrites it and fails ("rewritten: review the diff")."""

from __future__ import annotations

import os
import sys
import typing
from pathlib import Path
from typing import Callable

import pytest

from tests.helpers import REPO
from webhook import strategies
from webhook.errors import AnnotationError
from webhook.mutate import annotations as request
from webhook.policy.schema import ModelSpec, PolicyDefaults


DOC = REPO / "docs" / "strategies.md"
POLICY_DOC = REPO / "docs" / "policy.md"
BEGIN, END = "<!-- generated from webhook/strategies/: begin -->", "<!-- generated from webhook/strategies/: end -->"


UNKNOWN = "no-such-strategy"  # never a strategy's name: not a Kubernetes volume word


def test_the_registry_names_each_strategy_once_and_by_its_module() -> None:
    names = strategies.names()
    assert names[0] == "pvc" and len(set(names)) == len(names)  # pvc first: the built-in default
    for name in names:
        strategy = strategies.get(name)
        assert strategy.name == name and type(strategy).__module__ == f"webhook.strategies.{name}"
    with pytest.raises(KeyError, match=", ".join(names)):
        strategies.get(UNKNOWN)


def test_the_schema_and_the_annotation_take_exactly_the_registry() -> None:
    literal = typing.get_args(PolicyDefaults.model_fields["strategy"].annotation)[0]
    assert typing.get_args(literal) == strategies.names()
    for name in strategies.names():
        assert request.parse({"model.cache/name": "m", "model.cache/strategy": name}).strategy == name
    with pytest.raises(AnnotationError, match="use one of " + ", ".join(strategies.names())):
        request.parse({"model.cache/name": "m", "model.cache/strategy": UNKNOWN})


@pytest.mark.parametrize("name", strategies.names())
def test_a_strategy_needs_an_oci_source_exactly_when_it_says_so(name: str) -> None:
    oci = "oci://registry.example.com/m@sha256:" + "0" * 64
    fits, misfits = (oci, "s3://b/m/") if strategies.get(name).oci_source else ("s3://b/m/", oci)
    ModelSpec(source=fits, size="1Gi", strategy=name)
    with pytest.raises(ValueError):
        ModelSpec(source=misfits, size="1Gi", strategy=name)


def render() -> str:
    """The block of docs/strategies.md: the table, then each strategy's own words."""
    lines = [BEGIN, "", "| strategy | volume | downloader init container | serving containers |", "|---|---|---|---|"]
    for name, s in strategies.REGISTRY.items():
        lines.append(f"| `{name}` | {s.volume_doc} | {s.init_doc} | {s.serving_doc} |")
    for name, s in strategies.REGISTRY.items():
        doc = (sys.modules[type(s).__module__].__doc__ or "").strip()
        lines += ["", f"### `{name}`", "", doc, "", f"Source: [webhook/strategies/{name}.py](../webhook/strategies/{name}.py)"]
    return "\n".join(lines + ["", END])


def _shown(value: object) -> str:
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def render_settings() -> str:
    """The block of docs/policy.md: each strategy's own settings, as its module declares them."""
    maps = ", ".join(f"`defaults.{s.settings_key}` (strategy `{s.name}`)" for s in strategies.with_settings())
    lines = [BEGIN, f"The maps: {maps}.", "", "| field | type | built-in | what |", "|---|---|---|---|"]
    for s in strategies.with_settings():
        assert s.settings_model is not None
        for name, info in s.settings_model.model_fields.items():
            kind = (info.json_schema_extra or {}).get("kind", "")  # type: ignore[union-attr]
            builtin = _shown(s.builtin_settings[name]) if name in s.builtin_settings else "none"
            lines.append(f"| `defaults.{s.settings_key}.{name}` | {kind} | {builtin} | {info.description} |")
    return "\n".join(lines + [END])


@pytest.mark.parametrize("doc, rendered", [(DOC, render), (POLICY_DOC, render_settings)], ids=["strategies", "policy"])
def test_docs_block_is_the_registry(doc: Path, rendered: Callable[[], str]) -> None:
    text = doc.read_text()
    assert BEGIN in text and END in text, f"{doc.name} lost its generated block"
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if text[start:end] != rendered() and os.environ.get("UPDATE_DOCS"):
        doc.write_text(text[:start] + rendered() + text[end:])
        pytest.fail(f"{doc.name} rewritten (UPDATE_DOCS=1): review `git diff docs`, then run again", pytrace=False)
    assert text[start:end] == rendered(), f"docs/{doc.name} differs from webhook/strategies/: run with UPDATE_DOCS=1"


@pytest.mark.parametrize("name", strategies.names())
def test_every_setting_of_a_strategy_is_documented_and_has_a_builtin_or_none(name: str) -> None:
    s = strategies.get(name)
    if s.settings_model is None:
        assert not s.builtin_settings
        return
    for field, info in s.settings_model.model_fields.items():
        assert info.description and (info.json_schema_extra or {}).get("kind"), f"{name}: {field} says nothing"  # type: ignore[union-attr]
    assert set(s.builtin_settings) <= set(s.settings_model.model_fields)
    s.settings_model.model_validate(dict(s.builtin_settings))
