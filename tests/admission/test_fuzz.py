"""Fuzzing the admission endpoints with hypothesis: realistic reviews with their
annotations and random subtrees replaced by hostile values. Whatever comes in,
the answer is a well-formed AdmissionReview with 200/400/413/422, and every
allowed patch gives a pod the API server's validation (the OpenAPI schema,
strict) accepts when the pod it came from was valid.

The run in the suite is bounded and seeded (derandomized); `pytest -m fuzz`
runs a long one.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from typing import Any

import kubernetes_validate
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import golden_pods, post
from tests.admission.test_hostile_input import assert_well_formed
from tests.helpers import SCHEMA_VERSIONS, apply_response, pod_review

GOLDEN = golden_pods()
KEYS = ["model.cache/name", "model.cache/strategy", "model.cache/mount-path", "model.cache/containers",
        "model.cache/preload", "model.cache/shm-size", "model.cache/injected", "model.cache/stratgy"]
TRICKY = ["", " ", "0", "-1Gi", "NaN", "1e400", "1 Gi", "16Gi", "2Gi", ".5Gi", "+1Ki", "1e3", "١", "true", "false",
          "TRUE", "/models", "/", "/dev/shm", "/model-cache", "a:b", "/x/../y", "models", "llama-3-8b", "phi-2",
          "qwen2-0.5b", "my-modelcar", "asr-en", "vllm", "vllm,vllm", ",", "pvc", "memory", "oci", "image", "hostpath",
          "tape", "x" * 300, "\x00", "é", "model-cache", "pvc/llama-3-8b/x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.sampled_from(TRICKY),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["name", "x", "memory"]) | st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = root
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return root


@st.composite
def hostile_pods(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    pod = copy.deepcopy(draw(st.sampled_from(GOLDEN)))
    namespace = pod["metadata"]["namespace"]
    annotations = pod["metadata"]["annotations"]
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        annotations[key] = draw(st.sampled_from(TRICKY) | st.text(max_size=12))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        path = draw(st.sampled_from(_paths(pod)[1:]))
        pod = _set(pod, path, draw(json_values))
    return pod, namespace


def _schema_valid(obj: Any) -> bool:
    try:
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError, Exception):  # noqa: BLE001
        return False
    return True


def _names_unique(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    names = [c.get("name") for k in ("containers", "initContainers", "ephemeralContainers") for c in spec.get(k) or []]
    volumes = [v.get("name") for v in spec.get("volumes") or []]
    return len(names) == len(set(names)) and len(volumes) == len(set(volumes))


LONG = os.environ.get("MODEL_CACHE_FUZZ_EXAMPLES")
SEEN: Counter[str] = Counter()


def _check(client: FlaskClient, pod: Any, namespace: str) -> None:
    for path in ("/mutate", "/validate"):
        status, answer = post(client, path, pod_review(pod, namespace=namespace, uid="fz"))
        assert_well_formed(status, answer, "fz")
        SEEN[f"{path} {status} {answer['response']['allowed']}"] += 1
        if path == "/mutate" and status == 200 and answer["response"].get("patch"):
            patched = apply_response(pod, answer)
            assert _names_unique(patched), patched
            if _schema_valid(pod):
                SEEN["valid in, patched"] += 1
                assert _schema_valid(patched), json.dumps(patched)[:2000]


def test_fuzzed_reviews_get_well_formed_answers_and_valid_patches(app_client: FlaskClient) -> None:
    @settings(max_examples=300, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(case=hostile_pods())
    def run(case: tuple[dict[str, Any], str]) -> None:
        _check(app_client, *case)

    SEEN.clear()
    run()
    # The bounded run is worth something only if it reached allowed patches of
    # valid pods, denials and 400s.
    assert SEEN["valid in, patched"] >= 10, SEEN
    assert SEEN["/mutate 200 False"] >= 10, SEEN
    assert SEEN["/mutate 400 False"] >= 5, SEEN


@pytest.mark.fuzz
@settings(max_examples=int(LONG or 3000), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=hostile_pods())
def test_long_fuzz(app_client: FlaskClient, case: tuple[dict[str, Any], str]) -> None:
    _check(app_client, *case)
