"""Golden files: each tests/golden/<case>.in.yaml is a realistic pod as the API
server sends it; <case>.out.yaml is what model-cache makes of it under the
example policies in policies/. They read as documentation of what gets injected.

After an intended change, UPDATE_GOLDEN=1 rewrites each file that differs and
fails that case ("rewritten: review the diff"); a second run without it passes
only if the reviewed files are what the mutation makes.
"""

from __future__ import annotations

import os

import jsonpatch
import pytest
import yaml

from tests.helpers import GOLDEN, POLICIES, assert_schema_valid, golden_cases, golden_pod
from webhook.admission.patch import json_patch
from webhook.mutate import mutate_pod
from webhook.policy import PolicyStore

CASES = golden_cases()


@pytest.fixture(scope="module")
def store() -> PolicyStore:
    return PolicyStore(POLICIES)


def _mutate(case: str, store: PolicyStore) -> tuple[dict, dict]:
    pod = golden_pod(case)
    mutated, plan = mutate_pod(pod, pod["metadata"]["namespace"], store)
    assert mutated is not None and plan is not None, f"{case}: the pod was not mutated"
    return pod, mutated


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, store: PolicyStore) -> None:
    pod, mutated = _mutate(case, store)
    out = GOLDEN / f"{case}.out.yaml"
    expected = yaml.safe_load(out.read_text())  # read before any rewrite: never compared with itself
    if mutated != expected and os.environ.get("UPDATE_GOLDEN"):
        out.write_text(yaml.safe_dump(mutated, sort_keys=False))
        pytest.fail(f"{out.name} rewritten (UPDATE_GOLDEN=1): review `git diff tests/golden`, "
                    "then run again without UPDATE_GOLDEN", pytrace=False)
    assert mutated == expected


@pytest.mark.parametrize("case", CASES)
def test_golden_inputs_and_outputs_are_schema_valid(case: str, store: PolicyStore) -> None:
    pod, mutated = _mutate(case, store)
    assert_schema_valid(pod)
    assert_schema_valid(mutated)


@pytest.mark.parametrize("case", CASES)
def test_patch_only_adds_except_memory_quantities(case: str, store: PolicyStore) -> None:
    pod, mutated = _mutate(case, store)
    patch = json_patch(pod, mutated)
    for op in patch:
        if op["op"] == "add":
            continue
        assert op["op"] == "replace" and op["path"].endswith("/memory"), f"unexpected patch op {op}"
    assert jsonpatch.apply_patch(pod, patch) == mutated
    assert len(patch) <= len(jsonpatch.make_patch(pod, mutated).patch)


@pytest.mark.parametrize("case", CASES)
def test_mutated_pod_is_not_changed_again(case: str, store: PolicyStore) -> None:
    _, mutated = _mutate(case, store)
    again, plan = mutate_pod(mutated, mutated["metadata"]["namespace"], store)
    assert again is None and plan is None
