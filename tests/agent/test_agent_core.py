"""The agent's pure core: label keys, the Node patch, the eviction choice,
the pods' models, the policy's wishes, the placement the webhook adds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from webhook.agent.eviction import choose
from webhook.agent.holdings import Held, scan
from webhook.agent.node import in_use
from webhook.agent.prewarm import download_args
from webhook.agent.prepare import prepare
from webhook.agent.wishes import wishes
from webhook.inventory import (INVENTORY_ANNOTATION, LABEL_PREFIX, Holding, candidates_holding, holders_line,
                               label_key, node_patch, node_view, read_holdings)
from webhook.strategies.placement import PREFERRED, REQUIRED
from webhook.policy.files import parse_policy
from webhook.policy.resolved import ResolvedModel, merge_defaults
from webhook.strategies import get as strategy_named


def add_cache_affinity(spec: dict, model: ResolvedModel) -> None:
    strategy_named("hostpath").place(spec, model)

LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


@pytest.mark.parametrize("model,revision", [
    ("llama-3-8b", "0e9e39f249a16976918f6564b8830bc894c89659"),
    ("a" * 200, "main"), ("_x_", "main"), ("...", "v1"), ("Qwen2.5-72B_Instruct", "main"),
])
def test_a_label_key_is_a_valid_label_name_for_any_model(model: str, revision: str) -> None:
    key = label_key(model, revision)
    assert key.startswith(LABEL_PREFIX)
    assert LABEL_NAME.match(key.removeprefix(LABEL_PREFIX)), key


def test_label_keys_tell_revisions_and_long_names_apart() -> None:
    assert label_key("m", "a") != label_key("m", "b")
    assert label_key("x" * 100 + "1", "main") != label_key("x" * 100 + "2", "main")
    assert label_key("llama", "main").startswith(LABEL_PREFIX + "llama-")


def holding(model: str, revision: str = "main", size: int = 10, **kw: object) -> Holding:
    return Holding(model, revision, size, kw.pop("verified", True), "2026-01-01T00:00:00Z", **kw)  # type: ignore[arg-type]


def test_the_node_patch_sets_and_removes_only_our_labels() -> None:
    current = {"kubernetes.io/hostname": "n", label_key("gone", "main"): "verified",
               label_key("kept", "main"): "verified"}
    patch = node_patch(current, [holding("kept"), holding("new", verified=False)])
    labels = patch["metadata"]["labels"]
    assert labels == {label_key("gone", "main"): None, label_key("new", "main"): "unverified"}
    shown = read_holdings(patch["metadata"]["annotations"])
    assert [h.model for h in shown] == ["kept", "new"]


def held(model: str, size: int, used: float) -> Held:
    return Held(Path(f"/c/{model}/main"), holding(model, size=size), used)


def test_eviction_takes_the_least_recently_used_first_and_spares_kept_and_busy() -> None:
    models = [held("old", 40, 1.0), held("inuse", 40, 0.5), held("mid", 40, 2.0), held("new", 40, 3.0)]
    victims = choose(models, quota=100, keep=frozenset({("inuse", "main")}), busy=frozenset(), min_age=0, now=10)
    assert [v.holding.model for v in victims] == ["old", "mid"]
    victims = choose(models, quota=100, keep=frozenset({("inuse", "main")}), busy=frozenset({Path("/c/old/main")}),
                     min_age=0, now=10)
    assert [v.holding.model for v in victims] == ["mid", "new"]
    assert choose(models, quota=1000, keep=frozenset(), busy=frozenset(), min_age=0, now=10) == []
    # Used within min-age: spared.
    victims = choose(models, quota=0, keep=frozenset(), busy=frozenset(), min_age=8.5, now=10)
    assert [v.holding.model for v in victims] == ["inuse", "old"]


def test_models_in_use_are_those_of_live_hostpath_pods() -> None:
    pods = [{"metadata": {"annotations": {"model.cache/injected": "hostpath/a/main"}}, "status": {"phase": "Running"}},
            {"metadata": {"annotations": {"model.cache/injected": "hostpath/b/v1"}}, "status": {"phase": "Succeeded"}},
            {"metadata": {"annotations": {"model.cache/injected": "pvc/c/main"}}, "status": {"phase": "Running"}},
            {"metadata": {}, "status": {}}]
    assert in_use(pods) == {("a", "main")}


POLICY = """\
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults: {hostPath: {path: /var/lib/model-cache}}
models:
  warm: {source: "https://o/w.bin", size: 1Mi, strategy: hostpath, revision: r1, prewarm: {nodeSelector: {pool: gpu}}}
  cold: {source: "https://o/c.bin", size: 1Mi, strategy: hostpath}
  other: {source: "https://o/p.bin", size: 1Mi}
"""


def test_wishes_prewarm_what_the_node_selector_matches_under_this_root() -> None:
    policies = {"team": parse_policy(POLICY, "team.yaml")}
    w = wishes(policies, Path("/var/lib/model-cache"), {"pool": "gpu"})
    assert w.prewarmed == {("warm", "r1")} and w.models == {"warm", "cold"}
    assert wishes(policies, Path("/var/lib/model-cache"), {"pool": "cpu"}).prewarm == ()
    assert wishes(policies, Path("/elsewhere"), {"pool": "gpu"}).models == frozenset()


def test_a_prewarmed_archive_is_held_to_its_budget_as_a_pods_download_is() -> None:
    """The agent runs the downloader on the node's own disk: an archive it
    prewarms gets the policy's size as its unpacking budget (`--size`), as an
    injected downloader does, or a crafted archive could fill the node."""
    text = POLICY + '  asr: {source: "https://o/asr.tar.gz", size: 2Gi, strategy: hostpath}\n'
    policy = parse_policy(text, "team.yaml")
    defaults = merge_defaults(policy.defaults)
    root = Path("/var/lib/model-cache")
    archive = download_args(ResolvedModel("asr", "team", policy.models["asr"], defaults, "team.yaml"), root)
    assert archive[archive.index("--size") + 1] == "2Gi", archive
    plain = download_args(ResolvedModel("warm", "team", policy.models["warm"], defaults, "team.yaml"), root)
    assert "--size" not in plain, plain


def test_scan_publishes_complete_models_only(tmp_path: Path) -> None:
    done = tmp_path / "m" / "main"
    done.mkdir(parents=True)
    (done / ".model-cache.json").write_text(json.dumps({"complete": True, "total_size": 5, "files": [
        {"path": "w", "size": 5, "verified": "sha256"}]}))
    (tmp_path / "m" / "v2.partial").mkdir()
    (tmp_path / "n" / "main").mkdir(parents=True)
    found = scan(tmp_path, frozenset({("m", "main")}))
    assert [(h.holding.model, h.holding.size, h.holding.verified, h.holding.prewarmed) for h in found] == [
        ("m", 5, True, True)]


def test_prepare_makes_root_and_model_directories_0755(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    prepare(root, ["a", "b"], uid=10001)
    for d in (root, root / "a", root / "b"):
        assert d.is_dir() and d.stat().st_mode & 0o777 == 0o755
        if __import__("os").geteuid() == 0:
            assert (d.stat().st_uid, d.stat().st_gid) == (10001, 10001)


def model(prewarm: dict | None = None, weight: int = 50) -> ResolvedModel:
    text = POLICY.replace("defaults: {hostPath: {path: /var/lib/model-cache}}",
                          f"defaults: {{hostPath: {{path: /var/lib/model-cache, cacheAffinityWeight: {weight}}}}}")
    policy = parse_policy(text, "team.yaml")
    spec = policy.models["warm"]
    if prewarm is not None:
        spec = spec.model_copy(update={"prewarm": spec.prewarm.model_copy(update=prewarm)})
    return ResolvedModel("warm", "team", spec, merge_defaults(policy.defaults), "team.yaml")


def test_the_cache_affinity_is_added_beside_the_pods_own() -> None:
    own = {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
    spec = {"affinity": {"nodeAffinity": {PREFERRED: [own]}, "podAntiAffinity": {"x": 1}}}
    add_cache_affinity(spec, model())
    terms = spec["affinity"]["nodeAffinity"][PREFERRED]
    assert terms[0] == own and spec["affinity"]["podAntiAffinity"] == {"x": 1}
    assert terms[1] == {"weight": 50, "preference": {"matchExpressions": [
        {"key": label_key("warm", "r1"), "operator": "Exists"}]}}


def test_weight_zero_turns_it_off_and_required_joins_every_term_of_the_pod() -> None:
    spec: dict = {}
    add_cache_affinity(spec, model(weight=0))
    assert spec == {}
    mine = [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"matchFields": [{"key": "x"}]}]
    spec = {"affinity": {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": mine}}}}
    add_cache_affinity(spec, model(prewarm={"required": True}))
    terms = spec["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    want = {"key": label_key("warm", "r1"), "operator": "Exists"}
    assert terms[0]["matchExpressions"] == [{"key": "gpu", "operator": "Exists"}, want]
    assert terms[1] == {"matchFields": [{"key": "x"}], "matchExpressions": [want]}


def test_explain_counts_candidate_nodes_that_hold_the_model() -> None:
    key = label_key("llama", "abc")
    nodes = [node_view({"metadata": {"name": "a", "labels": {key: "verified", "pool": "gpu"}}}),
             node_view({"metadata": {"name": "b", "labels": {"pool": "gpu"}}}),
             node_view({"metadata": {"name": "c", "labels": {key: "verified"}}}),
             node_view({"metadata": {"name": "d", "labels": {key: "verified", "pool": "gpu"}},
                        "spec": {"taints": [{"effect": "NoSchedule", "key": "x"}]}})]
    candidates, holders = candidates_holding(nodes, {"pool": "gpu"}, "llama", "abc")
    assert holders_line(candidates, holders, "llama", "abc") == "1 of 2 candidate nodes hold llama@abc (a)"
    assert INVENTORY_ANNOTATION == "model.cache/inventory"


def test_explain_says_how_many_candidate_nodes_hold_a_hostpath_model(tmp_path: Path) -> None:
    from webhook.explain import explain_object
    from webhook.policy.store import PolicyStore

    (tmp_path / "team.yaml").write_text(POLICY)
    store = PolicyStore(tmp_path)
    key = label_key("cold", "main")
    nodes = [node_view({"metadata": {"name": n, "labels": {"pool": "gpu", **({key: "verified"} if n < "c" else {})}}})
             for n in ("a", "b", "c")] + [node_view({"metadata": {"name": "d", "labels": {key: "verified"}}})]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"model.cache/name": "cold"}},
           "spec": {"nodeSelector": {"pool": "gpu"}, "containers": [{"name": "c", "image": "x"}]}}
    (verdict,) = explain_object(pod, "team", store, None, nodes)
    assert verdict.placement == "2 of 3 candidate nodes hold cold@main (a, b)"
    (verdict,) = explain_object(pod, "team", store, None, None)
    assert verdict.placement is None


def test_policies_from_a_configmap_leave_out_a_bad_file_and_other_keys() -> None:
    from webhook.agent.wishes import parse_policies

    parsed = parse_policies({"team.yaml": POLICY, "bad.yaml": "models: [", "README": "x", "_default.yaml": POLICY})
    assert sorted(parsed) == ["_default", "team"]
