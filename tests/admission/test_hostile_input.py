"""Input an attacker or a careless user sends: every one gets a well-formed
AdmissionReview with 200, 400, 413 or 422, never a 500 (issue 9)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import golden_pods, post
from tests.helpers import apply_response, assert_schema_valid, pod_review


def assert_well_formed(status: int, answer: dict[str, Any], uid: str = "") -> None:
    assert status in (200, 400, 413, 422), status
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == uid
    if status != 200:
        assert answer["response"]["allowed"] is False and answer["response"]["status"]["message"]


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_deeply_nested_json_is_a_400(app_client: FlaskClient, path: str) -> None:
    for body in (b"[" * 1000, b'{"a":' * 5000, json.dumps(pod_review({"metadata": {"x": [[[[[[[[[[[]]]]]]]]]]]}})).encode()
                 .replace(b"[]", b"[" * 200 + b"]" * 200)):
        status, answer = post(app_client, path, body)
        assert status == 400
        assert_well_formed(status, answer, answer["response"]["uid"])
        assert "nests deeper" in answer["response"]["status"]["message"]


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": {"metadata": 1}},
         "request.object.metadata: Input should be a valid dictionary"),
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "DELETE", "object": [1, 2]},
         "request.object: Input should be a valid dictionary"),
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "CREATE",
          "object": {"metadata": {"annotations": {"model.cache/name": 5}}}},
         "request.object.metadata.annotations.model.cache/name: expected a string, got 5"),
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "CREATE",
          "object": {"metadata": {"annotations": {"model.cache/name": "phi-2"}}, "spec": {"containers": {"a": 1}}}},
         "request.object.spec.containers: Input should be a valid list"),
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "CREATE",
          "object": {"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": 1, "mountPath": "/x"}]}]}}},
         "request.object.spec.containers.0.volumeMounts.0.name"),
        ({"uid": "u2", "kind": {"kind": "Deployment", "group": "apps"}, "operation": "CREATE",
          "object": {"spec": {"template": {"metadata": {"annotations": ["model.cache/name"]}}}}},
         "request.object.spec.template.metadata.annotations: Input should be a valid dictionary"),
        ({"uid": "u2", "kind": {"kind": "ConfigMap"}, "operation": "CREATE", "object": {"data": {"ml.yaml": 3}}},
         "request.object.data.ml.yaml: expected a string"),
        ({"uid": "u2", "kind": "Pod", "operation": "CREATE", "object": {}}, "request.kind: Input should be a valid dictionary"),
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "MAKE", "object": {}}, "request.operation: Input should be"),
        ({"uid": "u2", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": {}, "dryRun": "yes"},
         "request.dryRun: Input should be a valid boolean"),
    ],
)
def test_type_confused_reviews_are_a_400_naming_the_field(app_client: FlaskClient, path: str,
                                                          request_: dict[str, Any], expected: str) -> None:
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request_}
    status, answer = post(app_client, path, body)
    assert status == 400
    assert_well_formed(status, answer, "u2")
    assert expected in answer["response"]["status"]["message"]


@pytest.mark.parametrize("value", ["NaN", "sNaN", "1e9999999999Gi", "Infinity", "1 Gi", "1_000Mi", "1e400Gi", "١Gi"])
def test_bad_shm_sizes_are_denied_by_name(app_client: FlaskClient, value: str) -> None:
    pod = golden_pods()[-1]
    pod["metadata"]["annotations"]["model.cache/shm-size"] = value
    status, answer = post(app_client, "/mutate", pod_review(pod, uid="q"))
    assert_well_formed(status, answer, "q")
    assert status == 200 and answer["response"]["allowed"] is False
    message = answer["response"]["status"]["message"]
    assert message.startswith("model.cache/shm-size: ") and "is not a Kubernetes quantity" in message
    assert "a bug" not in message


def test_a_pod_memory_limit_that_is_not_a_quantity_is_denied_not_a_bug(app_client: FlaskClient) -> None:
    pod = next(p for p in golden_pods() if p["metadata"]["annotations"]["model.cache/name"] == "phi-2")
    pod["spec"]["containers"][0].setdefault("resources", {})["limits"] = {"memory": "NaN"}
    status, answer = post(app_client, "/mutate", pod_review(pod, uid="m"))
    assert status == 200 and answer["response"]["allowed"] is False
    assert "resources.limits.memory" in answer["response"]["status"]["message"]


@pytest.mark.parametrize("name", ["model-cache-download", "model-cache-oci-copy"])
@pytest.mark.parametrize("where", ["containers", "ephemeralContainers"])
def test_a_container_with_an_injected_name_is_denied(app_client: FlaskClient, name: str, where: str) -> None:
    pod = golden_pods()[-1]
    pod["spec"].setdefault(where, []).append({"name": name, "image": "busybox"})
    status, answer = post(app_client, "/mutate", pod_review(pod, uid="d"))
    assert status == 200 and answer["response"]["allowed"] is False
    assert f'already has a container named "{name}"' in answer["response"]["status"]["message"]


def test_every_golden_pod_still_mutates_into_a_valid_pod(app_client: FlaskClient) -> None:
    """The shape check lets through every realistic pod, and the result is valid."""
    for pod in golden_pods():
        status, answer = post(app_client, "/mutate", pod_review(pod, uid="g"))
        assert status == 200 and answer["response"]["allowed"] is True, answer
        assert_schema_valid(apply_response(pod, answer))
