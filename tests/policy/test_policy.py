"""Policy files: schema errors as users read them, lookup and merge, reload."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import MODEL_CACHE
from tests.helpers import POLICIES
from webhook import strategies
from webhook.errors import Denied
from webhook.download.uri import parse_source
from webhook.policy import PolicyStore, policy_problems

HEAD = "apiVersion: model.cache/v1alpha1\nkind: ModelCachePolicy\n"


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_example_policies_are_valid() -> None:
    result = subprocess.run([MODEL_CACHE, "policy", "check", str(POLICIES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "models:\n  m: {source: hf://a/b, size: lots}\n", "x.yaml: models.m.size: \"lots\" is not a Kubernetes quantity"),
        (HEAD + "models:\n  m: {source: ftp://a/b, size: 1Gi}\n", "models.m.source: 'ftp://a/b' has an unsupported scheme; use one of hf://, s3://"),
        (HEAD + "models:\n  m: {source: hf://a/b/c, size: 1Gi}\n", "models.m.source: 'hf://a/b/c': expected hf://ORG/REPO, hf://REPO or hf://datasets/ORG/REPO"),
        (HEAD + "models:\n  m: {source: 's3://', size: 1Gi}\n", "models.m.source: 's3://' names no repository, bucket"),
        (HEAD + "models:\n  m: {source: hf://a/b}\n", "models.m.size: required field is missing"),
        (HEAD + "defaults: {strategy: tape}\n", "defaults.strategy: Input should be "
         + ", ".join(f"'{n}'" for n in strategies.names()[:-1]) + f" or '{strategies.names()[-1]}', got 'tape'"),
        (HEAD + "defaults: {mountPath: models}\n", "defaults.mountPath: 'models' must be an absolute path"),
        (HEAD + "defaults: {pvc: {claimName: Models_PVC}}\n", "defaults.pvc.claimName: 'Models_PVC' is not a valid Kubernetes object name"),
        (HEAD + "defaults: {shmsize: 1Gi}\n", "defaults.shmsize: unknown field"),
        # One formatter for policies and reviews (webhook/pydantic_errors.py): YAML's unquoted scalars.
        (HEAD + "defaults: {pvc: {claimName: 123}}\n", 'defaults.pvc.claimName: expected a string, got 123; quote the value in YAML: "123"'),
        (HEAD + "models:\n  m: {source: hf://a/b, size: 1Gi, strategy: image}\n", 'models.m: strategy "image" cannot serve a download'),
        (HEAD + "models:\n  m: {source: hf://a/b, size: 1Gi, sha256: xyz}\n", "models.m.sha256: String should match pattern"),
        ("apiVersion: model.cache/v1\nkind: ModelCachePolicy\n", "apiVersion: Input should be 'model.cache/v1alpha1', got 'model.cache/v1'"),
        ("models: [unclosed\n", "x.yaml: not valid YAML: line 2, column 1"),
        ("- a list\n", "expected a mapping with apiVersion: model.cache/v1alpha1"),
    ],
)
def test_problems_name_file_field_and_expectation(text: str, expected: str) -> None:
    problems = policy_problems(text, "x.yaml")
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("source", ["hf://gpt2", "hf://datasets/org/repo", "hf://org/repo", "s3://bucket",
                                    "https://models.example.com/m.tar.gz"])
def test_a_source_the_downloader_reads_is_a_valid_policy_source(source: str) -> None:
    parse_source(source)  # the downloader's own grammar (download/uri.py) takes it
    assert policy_problems(HEAD + f"models:\n  m: {{source: '{source}', size: 1Gi}}\n", "x.yaml") == []


def test_file_name_must_be_a_namespace() -> None:
    assert "is not a namespace name" in policy_problems(HEAD, "Team_A.yaml")[0]


def test_policy_check_reports_each_error_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path / "_default.yaml", HEAD)
    write(tmp_path / "team-a.yaml", HEAD + "models:\n  m: {source: hf://a/b, size: -1Gi}\n")
    result = subprocess.run([MODEL_CACHE, "policy", "check", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{tmp_path}/team-a.yaml: models.m.size: \"-1Gi\" is negative" in result.stderr
    assert "Traceback" not in result.stderr


def test_lookup_namespace_first_then_default_and_merge_field_by_field(tmp_path: Path) -> None:
    write(tmp_path / "_default.yaml", HEAD + """
defaults:
  shmSize: 2Gi
  pvc: {claimName: shared}
  downloader: {image: img:1, resources: {limits: {memory: 1Gi}}}
  env: {A: "1", B: "2"}
models:
  shared-model: {source: hf://a/shared, size: 1Gi}
  m: {source: hf://a/from-default, size: 1Gi}
""")
    write(tmp_path / "team-a.yaml", HEAD + """
defaults:
  mountPath: /models
  downloader: {image: img:2}
  env: {B: "3"}
models:
  m: {source: hf://a/from-team, size: 2Gi}
""")
    store = PolicyStore(tmp_path)
    own = store.resolve("team-a", "m")
    assert own.spec.source == "hf://a/from-team" and own.policy_file == "team-a.yaml"
    fallback = store.resolve("team-a", "shared-model")
    assert fallback.policy_file == "_default.yaml"
    d = own.defaults
    assert d.mountPath == "/models" and d.shmSize == "2Gi" and d.pvc.claimName == "shared"
    assert d.downloader.image == "img:2"
    assert d.downloader.resources.limits == {"memory": "1Gi"}  # kept from _default
    assert d.env == {"A": "1", "B": "3"}
    assert d.strategy == "pvc"  # built-in default
    other = store.resolve("team-b", "m")
    assert other.spec.source == "hf://a/from-default" and other.defaults.mountPath == "/model-cache"


def test_no_default_file_means_other_namespaces_are_denied(tmp_path: Path) -> None:
    write(tmp_path / "team-a.yaml", HEAD + "models:\n  m: {source: hf://a/b, size: 1Gi}\n")
    store = PolicyStore(tmp_path)
    with pytest.raises(Denied, match="no model-cache policy for namespace team-b"):
        store.resolve("team-b", "m")


def _configmap_dir(root: Path, files: dict[str, str], generation: int) -> None:
    """What the kubelet does for a mounted ConfigMap: files in a timestamped dir,
    `..data` a symlink to it (swapped atomically), each name a symlink via ..data."""
    data_dir = root / f"..2026_11_23_{generation:02d}"
    data_dir.mkdir()
    for name, text in files.items():
        (data_dir / name).write_text(text)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(data_dir.name)
    os.replace(tmp_link, root / "..data")
    for name in files:
        link = root / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def test_configmap_symlink_swap_is_reloaded_and_bad_edit_keeps_last_good(tmp_path: Path) -> None:
    good = HEAD + "models:\n  m: {source: hf://a/one, size: 1Gi}\n"
    _configmap_dir(tmp_path, {"ml.yaml": good}, 1)
    store = PolicyStore(tmp_path, interval=0)
    assert store.resolve("ml", "m").spec.source == "hf://a/one"

    _configmap_dir(tmp_path, {"ml.yaml": good.replace("one", "two")}, 2)
    assert store.resolve("ml", "m").spec.source == "hf://a/two"

    _configmap_dir(tmp_path, {"ml.yaml": good.replace("size: 1Gi", "size: big")}, 3)
    assert store.resolve("ml", "m").spec.source == "hf://a/two"  # last good in force
    ready, detail = store.readiness()
    assert ready and "last good version kept" in detail and "models.m.size" in detail

    _configmap_dir(tmp_path, {"ml.yaml": good.replace("one", "three")}, 4)
    assert store.resolve("ml", "m").spec.source == "hf://a/three"
    assert store.errors == {}


def test_bad_file_at_start_is_not_ready(tmp_path: Path) -> None:
    write(tmp_path / "ml.yaml", "kind: nonsense\n")
    ready, detail = PolicyStore(tmp_path).readiness()
    assert not ready and "ml.yaml" in detail and "apiVersion" in detail


def test_reload_is_throttled(tmp_path: Path) -> None:
    write(tmp_path / "ml.yaml", HEAD + "models:\n  m: {source: hf://a/one, size: 1Gi}\n")
    store = PolicyStore(tmp_path, interval=3600)
    write(tmp_path / "ml.yaml", HEAD + "models:\n  m: {source: hf://a/second-version, size: 1Gi}\n")
    assert store.resolve("ml", "m").spec.source == "hf://a/one"
    store.reload()
    assert store.resolve("ml", "m").spec.source == "hf://a/second-version"
