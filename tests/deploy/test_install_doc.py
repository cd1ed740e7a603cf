"""docs/install.md works as written: its Helm values example installs your
registry and your policies, and the paths it sends people to exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from tests.deploy.render import REPO, assert_policies_pass_check, helm_template, one, validate_strictly

DOC = REPO / "docs" / "install.md"
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))


def values_example() -> dict:
    text = DOC.read_text()
    after = text.split("`my-values.yaml` with your registry and your policies:", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", after, re.S)
    assert block, "the my-values.yaml example is gone"
    return yaml.safe_load(block.group(1))


def test_the_values_example_installs_your_registry_and_policies(tmp_path: Path) -> None:
    docs = helm_template(values=values_example(), tmp=tmp_path)
    validate_strictly(docs, minimum=11)
    pod = one(docs, "Deployment", "model-cache")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/platform/model-cache:0.1.0"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    cm = one(docs, "ConfigMap", "model-cache-policies")
    assert sorted(cm["data"]) == ["_default.yaml", "team-a.yaml"]
    assert_policies_pass_check(cm, tmp_path)


def test_the_paths_it_names_exist() -> None:
    text = DOC.read_text()
    paths = set(re.findall(r"`((?:manifests|docs|charts|policies)/[\w./-]*)`", text))
    assert len(paths) >= 8
    missing = sorted(p for p in paths if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"docs/install.md names paths that do not exist: {missing}"


def test_every_chart_value_is_documented() -> None:
    values = yaml.safe_load((REPO / "charts" / "model-cache" / "values.yaml").read_text())
    text = DOC.read_text()
    for key in values:
        assert f"`{key}" in text, f"values.yaml key {key} is not in docs/install.md's values table"
