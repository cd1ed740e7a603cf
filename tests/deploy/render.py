"""Rendering the install the way an operator does: `kustomize build` of
manifests/ and overlays, `helm template` of the chart. The binaries come from
scripts/helm-bin (built from the Go module proxy into the user cache), else
from PATH (`kubectl kustomize` stands in for kustomize); a test that needs a
missing one skips and says how to get it."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import MODEL_CACHE, cannot_run

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "model-cache"
CACHE_BIN = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "model-cache" / "bin"
# matchConditions are GA from 1.30; 1.32 is the oldest schema the package ships.
SCHEMA_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())
# Kinds of CRDs the package has no schema for; their tests check them field by field.
CRD_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")
# What Helm adds for its own bookkeeping; everything else must agree.
HELM_LABELS = ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version",
               "helm.sh/chart")
HELM_ANNOTATIONS = ("helm.sh/resource-policy",)

Doc = dict[str, Any]


def binary(name: str) -> str | None:
    cached = CACHE_BIN / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which(name)


def kustomize_command() -> list[str] | None:
    if (exe := binary("kustomize")) is not None:
        return [exe, "build"]
    if (kubectl := shutil.which("kubectl")) is not None:
        return [kubectl, "kustomize"]
    return None


def need_kustomize() -> list[str]:
    cmd = kustomize_command()
    if cmd is None:
        cannot_run("no kustomize or kubectl: run scripts/helm-bin (needs Go) to build kustomize")
    return cmd


def need_helm() -> str:
    exe = binary("helm")
    if exe is None:
        cannot_run("no helm: run scripts/helm-bin (needs Go) to build it from the Go module proxy")
    return exe


def _docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(path: str | Path) -> list[Doc]:
    cmd = need_kustomize()
    out = subprocess.run([*cmd, str(REPO / path)], check=True, capture_output=True, text=True, timeout=120)
    return _docs(out.stdout)


# The namespace the docs install into (`helm install -n model-cache`); the
# chart puts everything in the release's namespace.
RELEASE_NAMESPACE = "model-cache"


def helm_template(*args: str, values: dict[str, Any] | None = None, tmp: Path | None = None,
                  tests: bool = False) -> list[Doc]:
    """`helm template model-cache charts/model-cache -n model-cache ARGS`;
    VALUES go in a values file. The `helm test` hooks only with TESTS."""
    helm = need_helm()
    cmd = [helm, "template", "model-cache", str(CHART), *args]
    if not {"-n", "--namespace"} & set(args):
        cmd += ["--namespace", RELEASE_NAMESPACE]
    if not tests:
        cmd.append("--skip-tests")
    if values is not None:
        assert tmp is not None, "a values file needs a directory"
        vfile = tmp / f"values-{len(list(tmp.glob('values-*.yaml')))}.yaml"
        vfile.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(vfile)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise HelmError(proc.stderr)
    return _docs(proc.stdout)


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def kinds(docs: list[Doc]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def by_key(docs: list[Doc]) -> dict[tuple[str, str, str], Doc]:
    out = {}
    for d in docs:
        key = (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        assert key not in out, f"{key} twice"
        out[key] = d
    return out


def without_helm_labels(doc: Doc) -> Doc:
    doc = copy.deepcopy(doc)
    labels = doc["metadata"].get("labels", {})
    for key in HELM_LABELS:
        labels.pop(key, None)
    annotations = doc["metadata"].get("annotations", {})
    for key in HELM_ANNOTATIONS:
        annotations.pop(key, None)
    if "annotations" in doc["metadata"] and not annotations:
        del doc["metadata"]["annotations"]
    return doc


def validate_strictly(docs: list[Doc], minimum: int) -> None:
    """Every object against the Kubernetes schemas, unknown fields refused."""
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} against {version}: {err}")
        checked += 1
    assert checked >= minimum, f"only {checked} objects validated"


def assert_policies_pass_check(configmap: dict[str, Any], tmp: Path) -> None:
    """What the webhook will mount from CONFIGMAP passes the webhook's own `policy check`."""
    out = tmp / "policies"
    out.mkdir()
    for name, text in configmap["data"].items():
        (out / name).write_text(text)
    check = subprocess.run([MODEL_CACHE, "policy", "check", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
