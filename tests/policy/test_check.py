"""`model-cache policy check PATH...`: files and directories, strategies against
the namespace's allowed ones, files the kustomization leaves out (issue 12)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import MODEL_CACHE, POLICIES
from webhook import strategies
from webhook.errors import Denied
from webhook.mutate.annotations import InjectionRequest
from webhook.mutate.pod import mutate
from webhook.policy import ResolvedModel, check_paths, check_texts, merge_defaults, parse_policy
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
    # The summary comes whatever the outcome (docs/cli.md), on stdout.
    assert result.stdout == f"{tmp_path / 'ml.yaml'}: 1 policy file(s) read, 1 error and 1 warning\n"


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


def test_an_unknown_field_gets_the_closest_one_and_no_repo_path() -> None:
    report = check_texts({"ml.yaml": HEAD + textwrap.dedent("""\
        defaults: {pvc: {claimNmae: models}, Downloader: {}}
        modles: {}
        models:
          m: {source: "hf://a/b", size: 1Gi, revison: main, zzz: 1}
        """)})
    assert report.errors == [
        "ml.yaml: defaults.pvc.claimNmae: unknown field; did you mean 'claimName'? fields here: claimName",
        "ml.yaml: defaults.Downloader: unknown field; did you mean 'downloader'? fields here: strategy, "
        "allowedStrategies, mountPath, shmSize, downloader, env, pvcHeadroomPercent, "
        + ", ".join(s.settings_key for s in strategies.with_settings()),
        "ml.yaml: models.m.revison: unknown field; did you mean 'revision'? fields here: source, revision, size, "
        "sha256, authSecretName, include, strategy, ociPath, prewarm, dragonfly",
        "ml.yaml: models.m.zzz: unknown field; fields here: source, revision, size, sha256, authSecretName, include, "
        "strategy, ociPath, prewarm, dragonfly",
        "ml.yaml: modles: unknown field; did you mean 'models'? fields here: apiVersion, kind, defaults, models"]
    assert not any("policies/" in e or ".md" in e for e in report.errors)


UNPINNED = HEAD + textwrap.dedent("""\
    models:
      branch: {source: "hf://org/a", size: 1Gi, revision: main}
      tag: {source: "hf://org/b", size: 1Gi, revision: v1.0}
      unset: {source: "hf://org/c", size: 1Gi}
      short: {source: "hf://org/d", size: 1Gi, revision: 0e9e39f}
      pinned: {source: "hf://org/e", size: 1Gi, revision: 0e9e39f249a16976918f6564b8830bc894c89659}
      s3: {source: "s3://bucket/f/", size: 1Gi}
    """)


def test_an_hf_revision_that_is_not_a_commit_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(UNPINNED)
    report = check_paths([tmp_path / "ml.yaml"])
    assert report.errors == []
    advice = "which moves: nodes may cache different files under one name; pin the 40-hex commit"
    assert report.warnings == [
        f"{tmp_path}/ml.yaml: models.branch.revision: 'main' is a branch or tag, {advice}",
        f"{tmp_path}/ml.yaml: models.tag.revision: 'v1.0' is a branch or tag, {advice}",
        f"{tmp_path}/ml.yaml: models.unset.revision: not set, so it is the main branch, {advice}",
        f"{tmp_path}/ml.yaml: models.short.revision: '0e9e39f' is a branch or tag, {advice}"]
    result = run(tmp_path / "ml.yaml")
    assert result.returncode == 0  # a warning, not an error
    assert result.stdout == f"{tmp_path / 'ml.yaml'}: 1 policy file(s) read, 4 warnings; valid\n"
    strict = subprocess.run([MODEL_CACHE, "policy", "check", "--strict", str(tmp_path / "ml.yaml")],
                            capture_output=True, text=True)
    assert strict.returncode == 1 and strict.stdout == result.stdout  # --strict: a warning is a finding
    assert result.stderr.splitlines()[0] == f"warning: {tmp_path}/ml.yaml: models.branch.revision: 'main' is a " \
                                            f"branch or tag, {advice}"
    # The ConfigMap review repeats check_texts without the advice: it stays as it was.
    assert check_texts({"ml.yaml": UNPINNED}).warnings == []


def test_output_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(UNPINNED.replace("size: 1Gi, revision: main", "sise: 1Gi, revision: main"))
    result = subprocess.run([MODEL_CACHE, "policy", "check", "-o", "json", str(tmp_path / "ml.yaml"),
                             str(tmp_path / "missing")], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report == {
        "ok": False, "files": 1,
        "errors": [
            {"path": f"{tmp_path}/ml.yaml", "code": "invalid", "message": "models.branch.size: required field is missing"},
            {"path": f"{tmp_path}/ml.yaml", "code": "invalid",
             "message": "models.branch.sise: unknown field; did you mean 'size'? fields here: source, revision, size, "
                        "sha256, authSecretName, include, strategy, ociPath, prewarm, dragonfly"},
            {"path": f"{tmp_path}/missing", "code": "not-found", "message": "no such file or directory"}],
        "warnings": []}
    as_yaml = subprocess.run([MODEL_CACHE, "policy", "check", "--output", "yaml", str(tmp_path / "ml.yaml"),
                              str(tmp_path / "missing")], capture_output=True, text=True)
    assert as_yaml.returncode == 1 and yaml.safe_load(as_yaml.stdout) == report
    assert as_yaml.stdout.startswith("ok: false\nfiles: 1\nerrors:\n- path: ")  # YAML, not JSON
    (tmp_path / "ml.yaml").write_text(UNPINNED)
    good = subprocess.run([MODEL_CACHE, "policy", "check", "-o", "json", str(tmp_path)], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout
    found = json.loads(good.stdout)
    assert found["ok"] is True and found["files"] == 1 and found["errors"] == []
    assert [(w["code"], w["message"].split(":")[0]) for w in found["warnings"]] == [
        ("unpinned-revision", f"models.{m}.revision") for m in ("branch", "tag", "unset", "short")]


@pytest.mark.parametrize("name", strategies.names())
def test_policy_check_and_the_mutation_agree_on_what_a_strategy_cannot_serve(name: str) -> None:
    """A policy that picks strategy NAME with nothing but built-in settings:
    `policy check` reports what the strategy says makes it unusable (a setting it
    needs) exactly when the mutation denies a pod for it, in the same words."""
    source = "oci://r.example.com/m@sha256:" + "0" * 64 if strategies.get(name).oci_source else "hf://a/b"
    text = HEAD + f"defaults: {{strategy: {name}}}\nmodels:\n  m: {{source: '{source}', size: 1Gi}}\n"
    report = check_texts({"ml.yaml": text})
    policy = parse_policy(text, "ml.yaml")
    model = ResolvedModel("m", "ml", policy.models["m"], merge_defaults(policy.defaults), "ml.yaml")
    reason = strategies.unusable(name, model)
    pod = {"metadata": {"annotations": {"model.cache/name": "m"}}, "spec": {"containers": [{"name": "c"}]}}
    if reason is None:
        assert report.errors == []
        assert mutate(pod, InjectionRequest("m"), model)[0] is not None
    else:
        assert report.errors == [f"ml.yaml: models.m: {reason}; every pod asking for m would be denied"]
        with pytest.raises(Denied, match=re.escape(reason)):
            mutate(pod, InjectionRequest("m"), model)
