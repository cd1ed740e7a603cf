"""The operator's pages (troubleshooting, upgrade, KServe, the CLI, CHANGELOG) are
linked from the README, and what they tell people to type exists: every
chart value they name is in values.yaml, every `model-cache` command line
parses, every repository path they name exists."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.deploy.render import CHART, REPO

PAGES = ("docs/troubleshooting.md", "docs/upgrade.md", "docs/kserve.md", "docs/cli.md", "CHANGELOG.md")


def value_paths(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= value_paths(value, prefix + key + ".")
    return out


def test_the_readme_links_every_page() -> None:
    readme = (REPO / "README.md").read_text()
    for page in PAGES:
        assert f"]({page})" in readme, page


@pytest.mark.parametrize("page", PAGES)
def test_the_chart_values_a_page_names_exist(page: str) -> None:
    values = value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    text = (REPO / page).read_text()
    named = set(re.findall(r"(?:--set |`)((?:namespace|priorityClass|podDisruptionBudget|tests|policies|"
                           r"networkPolicy|certificates|serviceAccount)\.[\w.]+)", text))
    named |= {m.split("=")[0] for s in re.findall(r"--set ([\w.]+=[^\s`]+)", text) for m in s.split(",") if m}
    assert not named - values, f"{page} names chart values that do not exist: {sorted(named - values)}"


@pytest.mark.parametrize("page", PAGES)
def test_the_model_cache_commands_parse(page: str) -> None:
    from webhook.cli import build_parser  # late: the lead moves modules around

    lines = [ln.split("#")[0].strip() for ln in (REPO / page).read_text().splitlines()]
    commands = [ln for ln in lines if ln.startswith("model-cache ")]
    for command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"{page}: `{command}` does not parse")


@pytest.mark.parametrize("page", PAGES)
def test_the_paths_a_page_names_exist(page: str) -> None:
    text = (REPO / page).read_text()
    links = [m for m in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if not m.startswith("http")]
    missing = [p for p in links if not (REPO / page).parent.joinpath(p).exists()]
    assert not missing, f"{page} links to paths that do not exist: {missing}"
