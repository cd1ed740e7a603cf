"""/mutate called again on a pod it injected (reinvocationPolicy: IfNeeded),
after a later webhook changed it: what that webhook broke is denied with our
message (issue 30), what it left alone passes; and the warnings of a pod that
skips /validate (made by a ReplicaSet, StatefulSet, DaemonSet or Job) come
from /mutate."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.helpers import GOLDEN, POLICIES, golden_cases, pod_review
from tests.mutate.test_mutate import MESH_PROXY, POLICY, by_name, mutate, pod, store  # noqa: F401 - store: a fixture
from webhook import admission
from webhook.mutate import mutate_pod
from webhook.objects import validated_at_apply
from webhook.policy import PolicyStore

Change = Callable[[dict[str, Any]], None]


def _mounts(p: dict[str, Any]) -> list[dict[str, Any]]:
    return by_name(p["spec"]["containers"], "server")["volumeMounts"]


def _model_mount(p: dict[str, Any]) -> dict[str, Any]:
    return by_name(_mounts(p), "model-cache")


def _drop_volume(p: dict[str, Any]) -> None:
    p["spec"]["volumes"] = [v for v in p["spec"]["volumes"] if v["name"] != "model-cache"]


def _drop_mounts(p: dict[str, Any]) -> None:
    for c in p["spec"]["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["name"] != "model-cache"]


def _replace_source(p: dict[str, Any]) -> None:
    by_name(p["spec"]["volumes"], "model-cache").pop("persistentVolumeClaim")
    by_name(p["spec"]["volumes"], "model-cache")["emptyDir"] = {}


def _other_claim(p: dict[str, Any]) -> None:
    by_name(p["spec"]["volumes"], "model-cache")["persistentVolumeClaim"]["claimName"] = "scratch"


def _moved(p: dict[str, Any]) -> None:
    _model_mount(p)["mountPath"] = "/elsewhere"


def _writable(p: dict[str, Any]) -> None:
    _model_mount(p)["readOnly"] = False


def _other_sub_path(p: dict[str, Any]) -> None:
    _model_mount(p)["subPath"] = "llama"


def _conflict(p: dict[str, Any]) -> None:
    p["spec"]["volumes"].append({"name": "config", "emptyDir": {}})
    _mounts(p).append({"name": "config", "mountPath": "/model-cache/"})


BROKEN: dict[str, tuple[Change, str]] = {
    "volume removed": (_drop_volume, "has no volume model-cache"),
    "every mount removed": (_drop_mounts, "no container mounts volume model-cache"),
    "volume source replaced": (_replace_source, "volume model-cache was changed after model-cache injected it "
                                                "(its source is emptyDir, not persistentVolumeClaim)"),
    "another claim": (_other_claim, "volume model-cache was changed"),
    "mount moved": (_moved, "container server mounts volume model-cache at /elsewhere, not at /model-cache"),
    "mount writable": (_writable, "container server mounts volume model-cache writable at /model-cache"),
    "mount subPath changed": (_other_sub_path, "with subPath llama, not llama/abc123"),
    "conflicting mount": (_conflict, "container server mounts volume config at /model-cache, where model-cache "
                                     "mounted model llama"),
}


def _again(p: dict[str, Any], store: PolicyStore, **extra: Any) -> admission.Answer:
    return admission.answer_mutation(pod_review(p, namespace="ml", **extra)["request"], store)


@pytest.mark.parametrize("case", list(BROKEN))
def test_what_a_later_webhook_broke_is_denied_with_our_message(store: PolicyStore, case: str) -> None:
    change, message = BROKEN[case]
    injected = mutate(pod(), store)
    assert _again(injected, store).allowed  # untouched: passes, nothing to add
    broken = copy.deepcopy(injected)
    change(broken)
    answer = _again(broken, store)
    assert (answer.allowed, answer.code, answer.result) == (False, 403, "denied")
    assert message in (answer.message or ""), answer.message
    assert "model.cache/injected=pvc/llama" in answer.message or "model llama" in answer.message
    assert answer.message.endswith("fix the other webhook")
    # /validate of a bare pod says the same: one rule, two callers.
    validated = admission.answer_validation(pod_review(broken, namespace="ml")["request"], store, None)
    assert (validated.allowed, validated.message) == (False, answer.message)


def test_a_memory_or_oci_volume_left_without_what_fills_it_is_denied(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(POLICY.replace("allowedStrategies: [pvc, hostpath, memory]",
                                                     "allowedStrategies: [pvc, hostpath, memory, oci]")
                                      .replace("size: 2Gi", "size: 2Gi\n    strategy: oci"))
    store = PolicyStore(tmp_path)
    for model, filler in (("small", "model-cache-download"), ("car", "model-cache-oci-copy")):
        injected = mutate(pod({"model.cache/name": model}), store)
        injected["spec"]["initContainers"] = [c for c in injected["spec"]["initContainers"] if c["name"] != filler]
        answer = _again(injected, store)
        assert not answer.allowed and f"has no init container {filler}" in answer.message, answer.message


def test_what_a_later_webhook_may_change_passes(store: PolicyStore) -> None:
    """Defaults the API server fills in, a sidecar, another volume elsewhere, an env: not ours to judge."""
    injected = mutate(pod({"model.cache/mount-path": "/models/"}), store)
    changed = copy.deepcopy(injected)
    changed["spec"]["initContainers"].insert(0, copy.deepcopy(MESH_PROXY))
    changed["spec"]["volumes"].append({"name": "config", "emptyDir": {}})
    _mounts(changed).append({"name": "config", "mountPath": "/models/config"})  # inside it: allowed, as at injection
    _model_mount(changed)["mountPropagation"] = "None"
    by_name(changed["spec"]["volumes"], "model-cache")["persistentVolumeClaim"]["readOnly"] = False
    by_name(changed["spec"]["containers"], "proxy").setdefault("env", []).append({"name": "X", "value": "1"})
    answer = _again(changed, store)
    assert (answer.allowed, answer.result, answer.patch) == (True, "skipped", None)
    # A memory volume's size written back in another form is the same size.
    memory = mutate(pod({"model.cache/name": "small"}), store)
    by_name(memory["spec"]["volumes"], "model-cache")["emptyDir"]["sizeLimit"] = "1536Mi"
    assert _again(memory, store).allowed


def test_warn_only_lets_a_broken_injection_through_with_the_denial_as_a_warning(store: PolicyStore) -> None:
    broken = mutate(pod(), store)
    _writable(broken)
    answer = admission.answer_mutation(pod_review(broken, namespace="ml")["request"], store, warn_only=True)
    assert answer.allowed and answer.would_deny and "writable at /model-cache" in answer.warnings[0]


# --- pods that skip /validate --------------------------------------------------------------

def owned(p: dict[str, Any], kind: str = "ReplicaSet", api_version: str = "apps/v1",
          controller: bool = True) -> dict[str, Any]:
    p["metadata"]["ownerReferences"] = [{"apiVersion": api_version, "kind": kind, "name": "srv-7d9f",
                                         "uid": "5b1f6a7e-2c34-4d5e-8f90-123456789abc", "controller": controller}]
    return p


def test_which_pods_skip_validate() -> None:
    for kind, version in (("ReplicaSet", "apps/v1"), ("StatefulSet", "apps/v1"), ("DaemonSet", "apps/v1"),
                          ("Job", "batch/v1")):
        assert validated_at_apply(owned(pod(), kind, version))
    assert not validated_at_apply(pod())
    assert not validated_at_apply(owned(pod(), controller=False))  # an owner, not the controller
    assert not validated_at_apply(owned(pod(), "ReplicationController", "v1"))  # never checked at apply
    assert not validated_at_apply(owned(pod(), "LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1"))
    assert not validated_at_apply(owned(pod(), "ReplicaSet", "extensions/v1beta1"))


def test_a_controller_made_pod_gets_the_warnings_of_validate_from_mutate(store: PolicyStore) -> None:
    """No facts source here: the memory strategy's own warnings, which need no lookup."""
    replica = owned(pod({"model.cache/name": "small"}))
    answer = _again(replica, store)
    assert answer.result == "mutated" and answer.patch
    assert any("uses strategy memory: it is downloaded again on every pod start" in w for w in answer.warnings)
    assert "memory-preload" in answer.rules
    # What /validate would have said of the pod as our patch leaves it.
    bare = pod({"model.cache/name": "small"})
    validated = admission.answer_validation(pod_review(mutate(bare, store), namespace="ml")["request"], store, None)
    assert answer.warnings == validated.warnings
    # A bare pod: /validate will be called, so /mutate says nothing.
    assert _again(pod({"model.cache/name": "small"}), store).warnings == []
    # Seen again (a later webhook's change): the warnings again, of the pod as it is now.
    again = _again(owned(mutate(pod({"model.cache/name": "small"}), store)), store)
    assert again.result == "skipped" and again.warnings == validated.warnings


VARIANTS = GOLDEN / "policies"
GOLDEN_CASES = [*golden_cases(), *(f"policies/{p.name.removesuffix('.in.yaml')}" for p in sorted(VARIANTS.glob("*.in.yaml")))]


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_every_golden_injection_passes_its_own_check(case: str, tmp_path: Path) -> None:
    """Seen again unchanged (a later webhook touched something else), each
    golden pod as we inject it, of every strategy (nfs included, under its own
    policy), passes: the check compares with what the strategy makes, not with
    one strategy's shape."""
    pod = yaml.safe_load((GOLDEN / f"{case}.in.yaml").read_text())
    namespace = pod["metadata"]["namespace"]
    own = GOLDEN / f"{case}.policy.yaml"
    if own.exists():
        (tmp_path / "policies").mkdir()
        shutil.copy(own, tmp_path / "policies" / f"{namespace}.yaml")
    policies = PolicyStore(tmp_path / "policies" if own.exists() else POLICIES)
    mutated, _ = mutate_pod(pod, namespace, policies)
    assert mutated is not None
    mutated["metadata"].setdefault("labels", {})["touched"] = "by another webhook"
    answer = admission.answer_mutation(pod_review(mutated, namespace=namespace)["request"], policies)
    assert answer.allowed and not answer.would_deny, answer.message
