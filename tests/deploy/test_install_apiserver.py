"""The chart's and the recipe overlay's objects, applied to a real
kube-apiserver (built by scripts/k8s-bins, started by tests/apiserver's
running_control_plane): the API server's own validation and admission chain
(CEL matchConditions compiled, Pod Security labels, RBAC escalation checks on
the roles) accept every object. CRD kinds (cert-manager, Prometheus
Operator) are left out: their CRDs are not installed. Skips without the
binaries or kubectl."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.deploy.render import CRD_GROUPS, REPO, helm_template, kustomize

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from tests.apiserver.conftest import running_control_plane, why_not
    except ImportError as err:  # the API-server tests moved: say so rather than fail
        pytest.skip(f"tests/apiserver's control plane is not importable: {err}")
    reason = why_not()
    if reason:
        pytest.skip(reason)
    with running_control_plane(tmp_path_factory.mktemp("deploy-control-plane")) as cp:
        yield cp


def apply(cluster: Any, docs: Docs) -> list[tuple[str, str, str]]:
    """Server-side apply, as `kubectl apply --server-side` does; returns what was applied."""
    docs = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
    # Namespaces first: the API server refuses objects in a namespace that does not exist yet.
    docs.sort(key=lambda d: d["kind"] != "Namespace")
    out = cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=deploy-test",
                          "-f", "-", input=yaml.safe_dump_all(docs))
    assert out.returncode == 0
    return [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs]


def assert_stored(cluster: Any, applied: list[tuple[str, str, str]]) -> None:
    for kind, ns, name in applied:
        args = ["get", kind.lower(), name, "-o", "name"] + (["-n", ns] if ns else [])
        assert cluster.kubectl(*args).stdout.strip(), f"{kind}/{name} not stored"


def test_the_chart_installs_with_every_toggle(cluster: Any, tmp_path: Path) -> None:
    values = {"namespace": {"name": "chart-ns"}, "warnOnly": True, "networkPolicy": {"enabled": True},
              "monitoring": {"dashboard": {"enabled": True}},
              "namespaceSelector": {"matchLabels": {"model.cache/enabled": "true"}}}
    applied = apply(cluster, helm_template(values=values, tmp=tmp_path))
    assert len(applied) >= 16
    assert_stored(cluster, applied)
    hooks = yaml.safe_load(cluster.kubectl("get", "mutatingwebhookconfiguration", "model-cache", "-o", "yaml").stdout)
    assert hooks["webhooks"][0]["matchConditions"][0]["name"] == "asks-for-a-model"


def test_the_recipe_overlay_installs(cluster: Any) -> None:
    applied = apply(cluster, kustomize(REPO / "docs" / "examples" / "own-policies"))
    assert ("Deployment", "ml-platform", "model-cache") in applied
    assert_stored(cluster, applied)


def test_a_bad_object_is_refused(cluster: Any) -> None:
    """The applies above would prove nothing if the API server took anything."""
    bad = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "bad"}, "webhooks": [{
               "name": "bad.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
               "clientConfig": {"url": "https://127.0.0.1:1/x"},
               "matchConditions": [{"name": "x", "expression": "object.metadata.nosuch("}]}]}
    out = cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0 and "compilation failed" in out.stderr.lower() + out.stdout.lower()
