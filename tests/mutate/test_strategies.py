"""The strategy registry (webhook/strategies/) is the one list of strategies:
the policy schema, the annotation parser and docs/strategies.md read it.

docs/strategies.md holds a block generated from the registry; after an intended
change, UPDATE_DOCS=1 rewrites it and fails ("rewritten: review the diff")."""

from __future__ import annotations

import os
import sys
import typing

import pytest

from tests.helpers import REPO
from webhook import strategies
from webhook.errors import AnnotationError
from webhook.mutate import annotations as request
from webhook.policy.schema import ModelSpec, PolicyDefaults


DOC = REPO / "docs" / "strategies.md"
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


def test_docs_table_is_the_registry() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC.name} lost its generated block"
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if text[start:end] != render() and os.environ.get("UPDATE_DOCS"):
        DOC.write_text(text[:start] + render() + text[end:])
        pytest.fail(f"{DOC.name} rewritten (UPDATE_DOCS=1): review `git diff docs`, then run again", pytrace=False)
    assert text[start:end] == render(), "docs/strategies.md differs from webhook/strategies/: run with UPDATE_DOCS=1"
