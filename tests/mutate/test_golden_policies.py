"""Golden files for denials and for policy variants, as Istio's testdata/inject
keeps them: tests/golden/denied/<case>.in.yaml is a pod the webhook must deny,
<case>.out.txt the message kubectl shows (part of the contract: it names the
problem and the fix); tests/golden/policies/<case>.in.yaml is a pod mutated
under its own policy, <case>.out.yaml what it becomes. A case may name its own
policy, <case>.policy.yaml, which then serves the pod's namespace alone;
without one the example policies in policies/ serve it.

After an intended change, UPDATE_GOLDEN=1 rewrites each file that differs and
fails that case, as tests/mutate/test_golden.py does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import GOLDEN, POLICIES, apply_response, assert_schema_valid, pod_review
from webhook import admission
from webhook.policy import PolicyStore

DENIED, VARIANTS = GOLDEN / "denied", GOLDEN / "policies"


def _cases(directory: Path) -> list[str]:
    return sorted(p.name.removesuffix(".in.yaml") for p in directory.glob("*.in.yaml"))


def _store(directory: Path, case: str, pod: dict[str, Any], tmp_path: Path) -> PolicyStore:
    own = directory / f"{case}.policy.yaml"
    if not own.exists():
        return PolicyStore(POLICIES)
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(own, policies / f"{pod['metadata']['namespace']}.yaml")
    return PolicyStore(policies)


def _answer(directory: Path, case: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod of CASE and the response /mutate gives it."""
    pod = yaml.safe_load((directory / f"{case}.in.yaml").read_text())
    request = pod_review(pod)["request"]
    return pod, admission.answer_mutation(request, _store(directory, case, pod, tmp_path)).review()["response"]


def _compare(out: Path, got: str) -> None:
    expected = out.read_text() if out.exists() else None
    if got != expected and os.environ.get("UPDATE_GOLDEN"):
        out.write_text(got)
        pytest.fail(f"{out.name} rewritten (UPDATE_GOLDEN=1): review `git diff tests/golden`, "
                    "then run again without UPDATE_GOLDEN", pytrace=False)
    assert expected is not None, f"{out.name} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert got == expected


@pytest.mark.parametrize("case", _cases(DENIED))
def test_denied(case: str, tmp_path: Path) -> None:
    pod, response = _answer(DENIED, case, tmp_path)
    assert response["allowed"] is False and response["status"]["code"] == 403, response
    assert "patch" not in response
    _compare(DENIED / f"{case}.out.txt", response["status"]["message"] + "\n")
    assert_schema_valid(pod)  # denied for what it asks, not for being malformed


@pytest.mark.parametrize("case", _cases(VARIANTS))
def test_policy_variant(case: str, tmp_path: Path) -> None:
    pod, response = _answer(VARIANTS, case, tmp_path)
    assert response["allowed"] is True and "patch" in response, response
    mutated = apply_response(pod, {"response": response})
    _compare(VARIANTS / f"{case}.out.yaml", yaml.safe_dump(mutated, sort_keys=False))
    assert_schema_valid(mutated)


def test_every_case_has_its_pod_and_answer() -> None:
    for directory, answer in ((DENIED, ".out.txt"), (VARIANTS, ".out.yaml")):
        stems = {p.name.split(".")[0] for p in directory.iterdir()}
        assert stems == set(_cases(directory)), f"{directory.name}: a file without its .in.yaml"
        assert all((directory / f"{c}{answer}").exists() for c in stems), f"{directory.name}: a case without {answer}"
