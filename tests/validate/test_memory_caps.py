"""A namespace's LimitRanges and ResourceQuotas against the memory the
mutation sets or raises (issue 17): the bound is named at apply time, rather
than a ReplicaSet that silently cannot create its pods."""

from __future__ import annotations

from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity

from tests.fakes import FakeApiServer
from tests.helpers import pod_review
from tests.validate import pods
from tests.validate.test_rules import GOOD_PVC, run, texts
from webhook.admission import validating as validation
from webhook.facts.cluster import ClusterFacts, MemoryCap, NamespaceLimits, limits_from_json
from webhook.policy import PolicyStore
from webhook.validate.lookups import FactsProvider
from webhook.validate.memory_caps import pod_memory


GI = Decimal(2**30)


def limit_range(name: str, **max_memory: str) -> dict:
    return {"kind": "LimitRange", "apiVersion": "v1", "metadata": {"name": name},
            "spec": {"limits": [{"type": kind, "max": {"memory": value}} for kind, value in max_memory.items()]}}


def quota(name: str, hard: dict[str, str], used: dict[str, str] | None = None, **spec: object) -> dict:
    return {"kind": "ResourceQuota", "apiVersion": "v1", "metadata": {"name": name},
            "spec": {"hard": hard, **spec}, "status": {"hard": hard, "used": used or {}}}


def test_the_bounds_are_read_from_the_two_lists() -> None:
    limits = limits_from_json(
        {"items": [limit_range("caps", Container="16Gi", Pod="32Gi"),
                   {"metadata": {"name": "cpu-only"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "4"}}]}}]},
        {"items": [quota("team", {"limits.memory": "40Gi", "memory": "30Gi", "cpu": "10"},
                         {"limits.memory": "20Gi", "memory": "1Gi"}),
                   quota("best-effort", {"limits.memory": "1Gi"}, scopes=["BestEffort"])]})
    assert limits == NamespaceLimits((
        MemoryCap("LimitRange", "caps", "Container", 16 * GI), MemoryCap("LimitRange", "caps", "Pod", 32 * GI),
        MemoryCap("ResourceQuota", "team", "limits.memory", 40 * GI, 20 * GI),
        MemoryCap("ResourceQuota", "team", "requests.memory", 30 * GI, 1 * GI)))


def test_the_raised_limit_meets_each_bound_by_name(store: PolicyStore) -> None:
    # tgi's 24Gi limit grows by phi-2's 6Gi (strategy memory); the downloader's 1Gi too.
    template = pods.tgi_template("phi-2")
    caps = NamespaceLimits((MemoryCap("LimitRange", "per-container", "Container", 16 * GI),
                            MemoryCap("LimitRange", "per-pod", "Pod", 30 * GI),
                            MemoryCap("ResourceQuota", "team", "limits.memory", 40 * GI, 20 * GI),
                            MemoryCap("ResourceQuota", "team", "requests.memory", 100 * GI, 0 * GI)))
    assert texts(run(store, template, ClusterFacts(limits=caps), template=True))[1:] == [
        "LimitRange per-container caps container memory at 16Gi; tgi gets 30Gi with model phi-2: "
        "its pods will be refused; raise the max",
        "LimitRange per-pod caps pod memory at 30Gi; a pod of model phi-2 has 30.1Gi in limits: it will be refused; "
        "raise the max",
        "ResourceQuota team has 20Gi of limits.memory left; a pod of model phi-2 needs 30.1Gi: it will be refused; "
        "raise the quota"]


def test_bounds_that_fit_say_nothing(store: PolicyStore) -> None:
    caps = NamespaceLimits((MemoryCap("LimitRange", "roomy", "Container", 64 * GI),
                            MemoryCap("ResourceQuota", "team", "limits.memory", 400 * GI, 20 * GI)))
    assert run(store, pods.final_pod(), ClusterFacts(pvc=GOOD_PVC, limits=caps)).findings == ()
    # A pvc pod's downloader (1Gi) is ours too: a tiny cap catches it.
    tiny = NamespaceLimits((MemoryCap("LimitRange", "tiny", "Container", parse_quantity("512Mi")),))
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=GOOD_PVC, limits=tiny))) == [
        "LimitRange tiny caps container memory at 512Mi; model-cache-download gets 1Gi with model llama-3-8b: "
        "its pods will be refused; raise the max"]


def test_pod_memory_counts_sidecars_with_the_containers_and_inits_one_at_a_time() -> None:
    def c(memory: str, **extra: str) -> dict:
        return {"resources": {"limits": {"memory": memory}}, **extra}

    spec = {"initContainers": [c("1Gi", restartPolicy="Always"), c("8Gi"), c("2Gi")],
            "containers": [c("3Gi"), c("1Gi"), {"name": "unbounded"}]}
    assert pod_memory(spec, "limits") == 9 * GI  # the 8Gi init beside the 1Gi sidecar beats 1 + 3 + 1
    assert pod_memory({"containers": [c("3Gi")]}, "requests") == 0


def test_a_deployment_in_a_namespace_with_a_quota_is_told_at_apply(store: PolicyStore, provider: FactsProvider,
                                                                   healthy_cluster: FakeApiServer) -> None:
    healthy_cluster.put("limitranges", limit_range("ml-limits", Container="16Gi"), "ml")
    healthy_cluster.put("resourcequotas", quota("ml-quota", {"limits.memory": "24Gi"}, {"limits.memory": "0"}), "ml")
    deployment = pods.deployment(pods.tgi_template("phi-2"))
    outcome = validation.review(pod_review(deployment, "ml", kind="Deployment", group="apps")["request"], store, provider)
    named = [w for w in outcome.warnings if "ml-limits" in w or "ml-quota" in w]
    assert [w.split(";")[0] for w in named] == ["LimitRange ml-limits caps container memory at 16Gi",
                                                 "ResourceQuota ml-quota has 24Gi of limits.memory left"]
