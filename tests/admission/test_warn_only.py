"""serve --warn-only: what would be denied is allowed, unchanged, with a warning,
and counted (issue 12: a gradual roll-out, like Kyverno's Audit)."""

from __future__ import annotations

from typing import Iterator

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from tests.helpers import golden_pods, post
from tests.helpers import POLICIES, pod_review


@pytest.fixture()
def warn_only_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    monkeypatch.setenv("MODEL_CACHE_CLUSTER_CHECKS", "off")
    from webhook.server.app import create_app

    yield create_app(POLICIES, warn_only=True).test_client()


def _count(endpoint: str) -> float:
    return REGISTRY.get_sample_value("model_cache_warn_only_denials_total", {"endpoint": endpoint}) or 0.0


def test_a_denial_becomes_an_allowed_unchanged_pod_with_a_warning(warn_only_client: FlaskClient) -> None:
    pod = golden_pods()[-1]
    pod["metadata"]["annotations"]["model.cache/name"] = "llama-3-70b"
    before = _count("mutate")
    status, answer = post(warn_only_client, "/mutate", pod_review(pod, uid="w"))
    response = answer["response"]
    assert status == 200 and response["allowed"] is True and "patch" not in response
    [warning] = response["warnings"]
    assert warning.startswith('model-cache (warn-only) would deny this pod: model "llama-3-70b" is not in the')
    assert _count("mutate") == before + 1


def test_warn_only_changes_nothing_for_pods_it_would_allow(warn_only_client: FlaskClient,
                                                           app_client: FlaskClient) -> None:
    pod = golden_pods()[-1]
    _, enforced = post(app_client, "/mutate", pod_review(pod, uid="same"))
    _, relaxed = post(warn_only_client, "/mutate", pod_review(pod, uid="same"))
    assert relaxed == enforced and enforced["response"]["patch"]


def test_validate_denials_become_warnings_too(warn_only_client: FlaskClient, app_client: FlaskClient) -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "model-cache-policies", "namespace": "model-cache",
                              "labels": {"model.cache/policy": "true"}},
                 "data": {"ml.yaml": "apiVersion: model.cache/v1alpha1\nkind: ModelCachePolicy\nmodels: 3\n"}}
    review = pod_review(configmap, kind="ConfigMap", uid="c")
    _, enforced = post(app_client, "/validate", review)
    assert enforced["response"]["allowed"] is False
    before = _count("validate")
    _, relaxed = post(warn_only_client, "/validate", review)
    assert relaxed["response"]["allowed"] is True
    assert relaxed["response"]["warnings"][0].startswith("model-cache (warn-only) would deny this pod: ml.yaml: models")
    assert _count("validate") == before + 1
