"""The rules alone (webhook/validate/rules.py) on pods as the mutation gives
them: realistic pods, facts given directly, warning texts as kubectl prints them."""

from __future__ import annotations

import pytest
from kubernetes.utils.quantity import parse_quantity

from tests.validate import pods
from webhook.facts import marker
from webhook.facts.cluster import MISSING, ClusterFacts, NamespaceInfo, PvcInfo, SecretInfo, Unavailable
from webhook.facts.finding import Finding
from webhook.facts.use import describe
from webhook.mutate import mutate_pod
from webhook.policy import PolicyStore
from webhook.strategies.image_source import tag_findings
from webhook.strategies.pvc import claim_name
from webhook.validate import warnings
from webhook.validate import rules as checks


GOOD_PVC = PvcInfo("llm-models", parse_quantity("100Gi"), parse_quantity("100Gi"), ("ReadWriteMany",), "Bound")
HF_SECRET = SecretInfo("hf-token", frozenset({"HF_TOKEN"}))


def run(store: PolicyStore, pod: dict, facts: ClusterFacts = ClusterFacts(), template: bool = False) -> checks.CheckResult:
    if marker.read(pod) is None:  # a template: what its pods become
        pod, _ = mutate_pod(pod, "ml", store)
        assert pod is not None
    mark = marker.read(pod)
    assert mark is not None
    model = store.resolve("ml", mark.model)
    return checks.run_checks(describe(pod, model, "ml"), model, facts, template=template)


def texts(result: checks.CheckResult) -> list[str]:
    return [f.text for f in result.findings]


def rules(result: checks.CheckResult) -> list[str]:
    return [f.rule for f in result.findings]


def test_a_well_set_up_pvc_pod_gets_no_warning(store: PolicyStore) -> None:
    result = run(store, pods.final_pod(), ClusterFacts(pvc=GOOD_PVC, secret=HF_SECRET))
    assert result.denial is None and result.findings == ()


def test_describe_reads_the_final_pod(store: PolicyStore) -> None:
    model = store.resolve("ml", "llama-3-8b")
    use = describe(pods.final_pod(), model, "ml")
    assert (use.final, use.strategy, claim_name(use), use.preload) == (True, "pvc", "llm-models", True)
    assert use.mounted_by == ("vllm",)
    assert (use.secret_name, use.secret_keys) == ("hf-token", frozenset({"HF_TOKEN"}))


def test_the_claim_in_the_pod_wins_over_the_policy(store: PolicyStore) -> None:
    model = store.resolve("ml", "llama-3-8b")
    use = describe(pods.final_pod(claim="team-b-models"), model, "ml")
    assert claim_name(use) == "team-b-models"


def test_pvc_smaller_than_model_plus_headroom(store: PolicyStore) -> None:
    pvc = PvcInfo("llm-models", parse_quantity("18Gi"), None, ("ReadWriteMany",), "Pending")
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=pvc, secret=HF_SECRET))) == [
        "PVC llm-models requests 18Gi; model llama-3-8b needs 16Gi + 20% headroom = 19.2Gi: grow the PVC"
    ]


def test_bound_capacity_is_what_counts(store: PolicyStore) -> None:
    # Requested 18Gi, but the provisioner rounded up to 20Gi: enough.
    pvc = PvcInfo("llm-models", parse_quantity("18Gi"), parse_quantity("20Gi"), ("ReadWriteMany",), "Bound")
    assert run(store, pods.final_pod(), ClusterFacts(pvc=pvc, secret=HF_SECRET)).findings == ()
    small = PvcInfo("llm-models", parse_quantity("10Gi"), parse_quantity("10Gi"), ("ReadWriteMany",), "Bound")
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=small, secret=HF_SECRET)))[0].startswith(
        "PVC llm-models has 10Gi; model llama-3-8b needs 16Gi")


def test_headroom_comes_from_the_policy(store: PolicyStore, policies) -> None:
    text = (policies / "ml.yaml").read_text().replace("pvcHeadroomPercent: 20", "pvcHeadroomPercent: 50")
    (policies / "ml.yaml").write_text(text)
    store.reload()
    pvc = PvcInfo("llm-models", parse_quantity("20Gi"), None, ("ReadWriteMany",), "Pending")
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=pvc, secret=HF_SECRET))) == [
        "PVC llm-models requests 20Gi; model llama-3-8b needs 16Gi + 50% headroom = 24Gi: grow the PVC"
    ]


def test_missing_pvc(store: PolicyStore) -> None:
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=MISSING, secret=HF_SECRET))) == [
        "PVC llm-models not found in namespace ml: the pod will stay Pending; create a ReadWriteMany PVC of at least 19.2Gi"
    ]


@pytest.mark.parametrize(("modes", "expected"), [
    (("ReadWriteOnce",), "PVC llm-models is ReadWriteOnce: replicas on other nodes cannot mount it; use a ReadWriteMany PVC"),
    (("ReadWriteOncePod",), "PVC llm-models is ReadWriteOncePod: no second pod can mount it; use a ReadWriteMany PVC"),
    (("ReadOnlyMany",), "PVC llm-models is ReadOnlyMany: init container model-cache-download cannot write the model; "
                        "use a ReadWriteMany PVC"),
])
def test_pvc_access_modes(store: PolicyStore, modes: tuple[str, ...], expected: str) -> None:
    pvc = PvcInfo("llm-models", parse_quantity("100Gi"), parse_quantity("100Gi"), modes, "Bound")
    result = run(store, pods.final_pod(), ClusterFacts(pvc=pvc, secret=HF_SECRET))
    assert (rules(result), texts(result)) == (["pvc-rwo"], [expected])


def test_read_only_many_is_fine_without_a_downloader(store: PolicyStore) -> None:
    pvc = PvcInfo("llm-models", parse_quantity("100Gi"), parse_quantity("100Gi"), ("ReadOnlyMany",), "Bound")
    assert run(store, pods.final_pod(preload=False), ClusterFacts(pvc=pvc)).findings == ()


def test_lost_and_deleted_pvcs(store: PolicyStore) -> None:
    lost = PvcInfo("llm-models", parse_quantity("100Gi"), None, ("ReadWriteMany",), "Lost")
    assert rules(run(store, pods.final_pod(), ClusterFacts(pvc=lost, secret=HF_SECRET))) == ["pvc-unusable"]
    going = PvcInfo("llm-models", parse_quantity("100Gi"), parse_quantity("100Gi"), ("ReadWriteMany",), "Bound", True)
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=going, secret=HF_SECRET))) == [
        "PVC llm-models is being deleted: new pods that use it will not start; recreate it"]


def test_secret_missing_or_lacking_the_key(store: PolicyStore) -> None:
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=GOOD_PVC, secret=MISSING))) == [
        "Secret hf-token for model llama-3-8b not found in namespace ml: the download cannot start; "
        "create it with key HF_TOKEN"]
    wrong = SecretInfo("hf-token", frozenset({"token"}))
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=GOOD_PVC, secret=wrong))) == [
        "Secret hf-token has no key HF_TOKEN: the download of model llama-3-8b cannot start; add it"]


def test_secret_keys_come_from_the_pods_own_references(store: PolicyStore) -> None:
    # s3: two required keys, AWS_SESSION_TOKEN optional in the pod, so not required.
    pod = pods.final_pod("mistral-7b")
    only_id = SecretInfo("s3-models", frozenset({"AWS_ACCESS_KEY_ID"}))
    assert texts(run(store, pod, ClusterFacts(pvc=GOOD_PVC, secret=only_id))) == [
        "Secret s3-models has no key AWS_SECRET_ACCESS_KEY: the download of model mistral-7b cannot start; add it"]
    # A downloader wired to another key name: that key is what must exist.
    pod = pods.final_pod(secret_keys=("HUGGING_FACE_HUB_TOKEN",))
    assert rules(run(store, pod, ClusterFacts(pvc=GOOD_PVC, secret=HF_SECRET))) == ["secret-key-missing"]


def _reads_token_itself(pod: dict) -> dict:
    """The pod's own model server reads key `token` of the policy's Secret (issue 17)."""
    pod["spec"]["containers"][0]["env"].append(
        {"name": "HF_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}})
    return pod


def test_secret_keys_are_those_the_injected_containers_read(store: PolicyStore) -> None:
    """Not the pod's own references: a model server reading another key of the
    same Secret neither raises a false alarm about the download nor hides a real one."""
    pod = _reads_token_itself(pods.final_pod())
    assert run(store, pod, ClusterFacts(pvc=GOOD_PVC, secret=HF_SECRET)).findings == ()
    only_token = SecretInfo("hf-token", frozenset({"token"}))
    assert texts(run(store, pod, ClusterFacts(pvc=GOOD_PVC, secret=only_token))) == [
        "Secret hf-token has no key HF_TOKEN: the download of model llama-3-8b cannot start; add it"]
    # Without a downloader, the Secret is the pod's own business: not checked, not looked up.
    model = store.resolve("ml", "llama-3-8b")
    assert describe(_reads_token_itself(pods.final_pod(preload=False)), model, "ml").secret_name is None


def test_a_template_whose_server_reads_another_key(store: PolicyStore) -> None:
    template = pods.tgi_template("llama-3-8b")
    template["spec"]["containers"][0]["env"] = [
        {"name": "HF_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]
    assert run(store, template, ClusterFacts(pvc=GOOD_PVC, secret=HF_SECRET), template=True).findings == ()


def test_no_downloader_means_no_secret_check(store: PolicyStore) -> None:
    model = store.resolve("ml", "llama-3-8b")
    assert describe(pods.final_pod(preload=False), model, "ml").secret_name is None


def test_memory_with_preload_and_without_limit(store: PolicyStore) -> None:
    result = run(store, pods.final_pod("phi-2", "memory", memory_limit=None))
    assert texts(result) == [
        "model phi-2 (6Gi) uses strategy memory: it is downloaded again on every pod start; use strategy pvc or hostpath",
        "model phi-2 keeps 6Gi in memory but container vllm has no memory limit: set resources.limits.memory",
    ]
    assert all(len(t) <= 120 for t in texts(result))


def test_memory_with_a_limit_only_warns_about_the_download(store: PolicyStore) -> None:
    assert rules(run(store, pods.final_pod("phi-2", "memory", memory_limit="38Gi"))) == ["memory-preload"]


def test_pod_level_memory_limit_counts(store: PolicyStore) -> None:
    pod = pods.final_pod("phi-2", "memory", memory_limit=None)
    pod["spec"]["resources"] = {"limits": {"memory": "40Gi"}}
    assert rules(run(store, pod)) == ["memory-preload"]


def test_oci_by_tag_and_by_digest(store: PolicyStore) -> None:
    assert texts(run(store, pods.final_pod("granite-tag", "oci"))) == [
        "model granite-tag: image quay.io/example/granite-3b-modelcar:v1.2 is a tag: "
        "pin it by digest (@sha256:...) in the policy"]
    assert run(store, pods.final_pod("granite-digest", "image")).findings == ()


def test_oci_without_a_tag_means_latest(store: PolicyStore) -> None:
    model = store.resolve("ml", "granite-tag")
    model = type(model)(model.name, model.namespace, model.spec.model_copy(update={"source": "oci://registry.local/m"}),
                        model.defaults, model.policy_file)
    assert "registry.local/m (tag latest)" in tag_findings(model)[0].text


def test_hostpath_pinning_and_pod_security(store: PolicyStore) -> None:
    pinned = run(store, pods.final_pod("asr-en", "hostpath"), ClusterFacts(namespace=NamespaceInfo("ml", {})))
    assert pinned.findings == ()
    loose = run(store, pods.final_pod("asr-en", "hostpath", node_selector=False),
                ClusterFacts(namespace=NamespaceInfo("ml", {"pod-security.kubernetes.io/enforce": "baseline"})))
    assert texts(loose) == [
        "model asr-en uses hostpath but the pod has no nodeSelector or nodeAffinity: pin it to the cache nodes "
        "(policy rule)",
        "namespace ml enforces Pod Security baseline, which forbids hostPath volumes: pods will be rejected; "
        "use strategy pvc",
    ]


def test_node_affinity_counts_as_pinning(store: PolicyStore) -> None:
    pod = pods.final_pod("asr-en", "hostpath", node_selector=False)
    pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}]}}}
    assert run(store, pod, ClusterFacts(namespace=NamespaceInfo("ml", {}))).findings == ()


def test_unavailable_facts_give_one_warning(store: PolicyStore) -> None:
    down = Unavailable("API server did not answer within 0.5s")
    assert texts(run(store, pods.final_pod(), ClusterFacts(pvc=down, secret=down))) == [
        "could not check PVC llm-models, Secret hf-token: API server did not answer within 0.5s; allowed unchecked"]
    mixed = run(store, pods.final_pod(), ClusterFacts(pvc=Unavailable("403 forbidden", "persistentvolumeclaims"),
                                                      secret=down))
    assert texts(mixed) == [
        "could not check PVC llm-models: 403 forbidden (RBAC: get persistentvolumeclaims); Secret hf-token: "
        "API server did not answer within 0.5s; allowed unchecked"]
    forbidden = run(store, pods.final_pod(), ClusterFacts(pvc=Unavailable("403 forbidden", "persistentvolumeclaims"),
                                                          secret=Unavailable("403 forbidden", "secrets")))
    assert texts(forbidden) == [
        "could not check PVC llm-models, Secret hf-token: 403 forbidden (RBAC: get persistentvolumeclaims, secrets); "
        "allowed unchecked"]


def test_denied_when_a_later_webhook_removed_the_volume(store: PolicyStore) -> None:
    pod = pods.final_pod()
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "model-cache"]
    result = run(store, pod, ClusterFacts(pvc=GOOD_PVC))
    assert result.denial is not None and result.findings == ()
    assert result.denial.startswith("pod is marked model.cache/injected=pvc/llama-3-8b but has no volume model-cache")


def test_denied_when_no_container_mounts_the_volume(store: PolicyStore) -> None:
    pod = pods.final_pod()
    vllm = pod["spec"]["containers"][0]
    vllm["volumeMounts"] = [m for m in vllm["volumeMounts"] if m["name"] != "model-cache"]
    assert "no container mounts volume model-cache" in (run(store, pod).denial or "")


def test_denied_when_memory_or_oci_volume_would_stay_empty(store: PolicyStore) -> None:
    assert "nothing fills it" in (run(store, pods.final_pod("phi-2", "memory", preload=False)).denial or "")
    oci = pods.final_pod("granite-tag", "oci")
    oci["spec"]["initContainers"] = [c for c in oci["spec"]["initContainers"] if c["name"] != "model-cache-oci-copy"]
    assert "no init container model-cache-oci-copy" in (run(store, oci).denial or "")


def test_pvc_without_preload_is_allowed(store: PolicyStore) -> None:
    # Someone else downloads (a Job, a first replica): a valid setup, not a denial.
    assert run(store, pods.final_pod(preload=False), ClusterFacts(pvc=GOOD_PVC)).denial is None


def test_templates_are_predicted_from_annotations_and_policy(store: PolicyStore) -> None:
    template = pods.tgi_template("phi-2", memory_limit=None)
    result = run(store, template, template=True)
    assert rules(result) == ["memory-preload", "memory-no-limit"]
    assert "container tgi has no memory limit" in texts(result)[1]  # the exporter has a limit
    pvc_template = pods.tgi_template("llama-3-8b", {"model.cache/containers": "tgi"})
    result = run(store, pvc_template, ClusterFacts(pvc=MISSING, secret=MISSING), template=True)
    assert rules(result) == ["pvc-missing", "secret-missing"]


def test_template_with_strategy_annotation(store: PolicyStore) -> None:
    template = pods.tgi_template("llama-3-8b", {"model.cache/strategy": "memory", "model.cache/preload": "false"})
    mutated, _ = mutate_pod(template, "ml", store)
    assert mutated is not None
    use = describe(mutated, store.resolve("ml", "llama-3-8b"), "ml")
    assert (use.strategy, use.preload, claim_name(use), use.secret_name) == ("memory", False, None, None)


def test_limits_dedupe_cut_and_cap() -> None:
    many = [Finding("a", "same"), Finding("a", "same"), Finding("b", "x" * 400 + "\nsecond line")]
    many += [Finding("c", f"warning {i:03d} " + "y" * 100) for i in range(60)]
    kept = warnings.limit_findings(many)
    assert [f.text for f in kept].count("same") == 1
    assert all(len(f.text) <= warnings.MAX_WARNING_CHARS and "\n" not in f.text for f in kept)
    assert sum(len(f.text.encode()) for f in kept) <= warnings.MAX_WARNINGS_BYTES
    assert kept[-1].rule == "truncated" and kept[-1].text.endswith("more model-cache warnings not shown; see the webhook log")
    shown = len(kept) - 1
    assert kept[-1].text.startswith(f"{len(many) - 1 - shown} more")


def test_every_warning_fits_120_characters_with_these_names(store: PolicyStore) -> None:
    """The texts users read: one line each, <= 120 characters for names of a usual length."""
    small = PvcInfo("llm-models", parse_quantity("18Gi"), None, ("ReadWriteOnce",), "Lost", True)
    cases = [
        run(store, pods.final_pod(), ClusterFacts(pvc=small, secret=SecretInfo("hf-token", frozenset()))),
        run(store, pods.final_pod(), ClusterFacts(pvc=MISSING, secret=MISSING)),
        run(store, pods.final_pod("phi-2", "memory", memory_limit=None)),
        run(store, pods.final_pod("granite-tag", "oci")),
        run(store, pods.final_pod("asr-en", "hostpath", node_selector=False),
            ClusterFacts(namespace=NamespaceInfo("ml", {"pod-security.kubernetes.io/enforce": "baseline"}))),
        run(store, pods.tgi_template("llama-3-8b"), ClusterFacts(pvc=Unavailable("403 forbidden", "persistentvolumeclaims"))),
    ]
    seen = {f.rule: f.text for result in cases for f in result.findings}
    assert set(seen) >= {"pvc-small", "pvc-rwo", "pvc-unusable", "pvc-missing", "secret-missing", "secret-key-missing",
                         "memory-preload", "memory-no-limit", "oci-tag", "hostpath-unpinned", "hostpath-baseline",
                         "cluster-unavailable"}
    too_long = {rule: len(text) for rule, text in seen.items() if len(text) > 120}
    assert not too_long, too_long
