"""The documented Job and CronJob examples are valid and call our CLI correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from webhook.cli import build_parser

EXAMPLES = ["docs/examples/gc-cronjob.yaml", "docs/examples/prewarm-job.yaml"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_parses_and_its_args_are_ours(name: str) -> None:
    doc = yaml.safe_load((REPO / name).read_text())
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["model-cache"]
    args = build_parser().parse_args(container["args"])
    assert args.command in ("gc", "download")
    if args.command == "download":
        # The injected layout: <root>/<model>/<revision>, the revision matching --revision.
        assert Path(args.dest).parent.parent == Path("/model-cache")
        assert Path(args.dest).name == args.revision


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_validates_against_the_kubernetes_schema(name: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    doc = yaml.safe_load((REPO / name).read_text())
    kv.validate(doc, "1.30", strict=True)
