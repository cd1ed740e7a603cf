"""`model-cache policy check PATH...`: files and directories, strategies against
the namespace's allowed ones, files the kustomization leaves out (issue 12)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from tests.helpers import MODEL_CACHE, POLICIES
from webhook.policy import check_paths, check_texts
HEAD = "apiVersion: model.cache/v1alpha1\nkind: ModelCachePolicy\n"


def run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODEL_CACHE, "policy", "check", *map(str, paths)], capture_output=True, text=True)


def test_the_example_policies_pass_as_a_directory_and_as_files() -> None:
    assert run(POLICIES).returncode == 0
    result = run(POLICIES / "llm.yaml", POLICIES / "speech.yaml")
    assert result.returncode == 0, result.stderr
    assert "2 policy file(s) valid" in result.stdout


def test_a_model_whose_strategy_the_namespace_forbids_is_an_error() -> None:
    report = check_texts({"ml.yaml": HEAD + textwrap.dedent("""\
        defaults: {strategy: pvc, allowedStrategies: [pvc]}
        models:
          asr: {source: "https://m.example.com/a.tar.gz", size: 1Gi, strategy: hostpath}
          ok: {source: "hf://a/b", size: 1Gi}
        """)})
    assert report.errors == [
        "ml.yaml: models.asr.strategy: hostpath is not in this namespace's allowedStrategies (pvc); "
        "every pod asking for asr would be denied"]


def test_a_default_strategy_outside_the_allowed_ones_is_an_error() -> None:
    report = check_texts({"ml.yaml": HEAD + "defaults: {strategy: memory, allowedStrategies: [pvc, hostpath]}\n"})
    assert len(report.errors) == 1 and "defaults.strategy: memory is not in allowedStrategies" in report.errors[0]


def test_the_merge_with_default_decides_and_inherited_conflicts_are_warnings() -> None:
    default = HEAD + textwrap.dedent("""\
        defaults: {allowedStrategies: [pvc, memory]}
        models:
          small: {source: "hf://a/small", size: 1Gi, strategy: memory}
        """)
    ns = HEAD + textwrap.dedent("""\
        defaults: {allowedStrategies: [pvc]}
        models:
          big: {source: "hf://a/big", size: 10Gi}
        """)
    report = check_texts({"_default.yaml": default, "ml.yaml": ns})
    assert report.errors == []
    assert report.warnings == ["ml.yaml: model small from _default.yaml has strategy memory, which namespace ml "
                               "does not allow (pvc): its pods there must set model.cache/strategy"]


def test_a_single_file_is_merged_with_its_sibling_default(tmp_path: Path) -> None:
    (tmp_path / "_default.yaml").write_text(HEAD + "defaults: {allowedStrategies: [pvc]}\n")
    (tmp_path / "ml.yaml").write_text(HEAD + "models:\n  m: {source: 'hf://a/b', size: 1Gi, strategy: memory}\n")
    result = run(tmp_path / "ml.yaml")
    assert result.returncode == 1
    assert "models.m.strategy: memory is not in this namespace's allowedStrategies (pvc)" in result.stderr


def test_a_file_the_kustomization_leaves_out_is_an_error(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "team-b.yaml").write_text(HEAD + "models: {}\n")
    report = check_paths([policies])
    assert report.errors == [f"{policies}/team-b.yaml: not listed in Kustomization's configMapGenerator files; "
                             "add it there, or it never reaches the cluster"]


def test_missing_paths_and_bad_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(HEAD + "models:\n  m: {source: 'ftp://x/y', size: 1Gi}\n")
    result = run(tmp_path / "nothing", tmp_path / "ml.yaml")
    assert result.returncode == 1
    assert f"{tmp_path}/nothing: no such file or directory" in result.stderr
    assert f"{tmp_path}/ml.yaml: models.m.source: " in result.stderr
