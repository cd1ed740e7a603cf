"""/mutate denies a hostpath pod in a namespace whose Pod Security forbids
hostPath, with the fix: PodSecurity runs before the validating webhooks, so
/validate's warning would never be seen (found by the real API server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml

from tests.helpers import GOLDEN, POLICIES, golden_pod, pod_review
from webhook.admission import answer_mutation
from webhook.policy import PolicyStore
from webhook.facts.cluster import LookupKey, NamespaceInfo, Unavailable


class Facts:
    """A FactsSource with fixed answers, counting what it was asked."""

    def __init__(self, labels: dict[str, str] | None, unavailable: bool = False) -> None:
        self.labels, self.unavailable, self.asked = labels, unavailable, 0

    def gather(self, keys: Iterable[LookupKey]) -> dict[LookupKey, Any]:
        self.asked += 1
        if self.unavailable:
            return {k: Unavailable("API server unreachable (timed out)") for k in keys}
        return {k: NamespaceInfo(k.name, self.labels or {}) for k in keys}


@pytest.fixture(scope="module")
def store() -> PolicyStore:
    return PolicyStore(POLICIES)


def request() -> dict[str, Any]:
    pod = golden_pod("triton-hostpath-sidecar")
    return pod_review(pod, uid="h")["request"]


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_denied_with_the_fix_where_pod_security_forbids_host_path(store: PolicyStore, level: str) -> None:
    facts = Facts({"pod-security.kubernetes.io/enforce": level})
    answer = answer_mutation(request(), store, facts)
    assert answer.allowed is False and answer.code == 403
    namespace = request()["namespace"]
    assert answer.message == (
        f"namespace {namespace} enforces Pod Security {level}, which forbids hostPath volumes, so model.cache "
        "strategy hostpath cannot work here; use strategy pvc (model.cache/strategy: pvc), or ask the platform "
        "team for a namespace that allows hostPath")


@pytest.mark.parametrize("facts", [Facts({"pod-security.kubernetes.io/enforce": "privileged"}), Facts({}),
                                   Facts(None, unavailable=True), None])
def test_injected_where_allowed_or_unknown(store: PolicyStore, facts: Facts | None) -> None:
    answer = answer_mutation(request(), store, facts)
    assert answer.allowed is True and answer.result == "mutated" and answer.strategy == "hostpath"


def test_other_strategies_do_not_ask(store: PolicyStore) -> None:
    facts = Facts({"pod-security.kubernetes.io/enforce": "restricted"})
    pod = golden_pod("vllm-gpu-pvc")
    del pod["metadata"]["ownerReferences"]  # a bare pod: a replica's warnings would ask for its PVC (issue 30)
    answer = answer_mutation(pod_review(pod, uid="p")["request"], store, facts)
    assert answer.allowed is True and facts.asked == 0


@pytest.mark.parametrize("level, denied", [("restricted", True), ("baseline", False)])
def test_nfs_is_denied_with_the_fix_only_where_pod_security_is_restricted(tmp_path: Path, level: str, denied: bool) -> None:
    case = GOLDEN / "policies" / "nfs-efs-vllm"
    pod = yaml.safe_load(case.with_suffix(".in.yaml").read_text())
    (tmp_path / f"{pod['metadata']['namespace']}.yaml").write_text(case.with_suffix(".policy.yaml").read_text())
    answer = answer_mutation(pod_review(pod, uid="n")["request"], PolicyStore(tmp_path),
                             Facts({"pod-security.kubernetes.io/enforce": level}))
    assert answer.allowed is not denied
    if denied:
        assert answer.message.startswith(f"namespace {pod['metadata']['namespace']} enforces Pod Security restricted, "
                                         "which forbids nfs volumes, so model.cache strategy nfs cannot work here")
