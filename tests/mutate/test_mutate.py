"""The pure mutation: behaviours one at a time, and every denial."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from kubernetes.utils.quantity import parse_quantity

from tests.helpers import assert_schema_valid, pod_review
from webhook import admission
from webhook.mutate.pod import mutate_pod
from webhook.errors import AnnotationError, Denied
from webhook.policy import PolicyStore

POLICY = """
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults:
  strategy: pvc
  allowedStrategies: [pvc, hostpath, memory]
  pvc: {claimName: shared-models}
  hostPath: {path: /var/lib/models}
  shmSize: 1Gi
  downloader:
    image: registry.local/model-cache:1
    resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {memory: 512Mi}}
    env: {HF_ENDPOINT: "https://hf-mirror.internal"}
  env: {HF_HUB_OFFLINE: 1, TRANSFORMERS_OFFLINE: "1"}
models:
  llama:
    source: hf://meta-llama/Llama-3.1-8B-Instruct
    revision: abc123
    size: 16Gi
    authSecretName: hf-token
  small:
    source: https://models.internal/small.tar.gz
    size: 1536Mi
    strategy: memory
  car:
    source: oci://registry.local/car:v1
    size: 2Gi
"""


@pytest.fixture()
def store(tmp_path: Path) -> PolicyStore:
    (tmp_path / "ml.yaml").write_text(POLICY)
    return PolicyStore(tmp_path)


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "srv-", "namespace": "ml", "annotations": {"model.cache/name": "llama", **(annotations or {})}},
        "spec": {
            "containers": [
                {"name": "server", "image": "vllm/vllm-openai:v0.6.3",
                 "resources": {"requests": {"memory": "8Gi", "nvidia.com/gpu": "1"}, "limits": {"memory": "10Gi", "nvidia.com/gpu": "1"}}},
                {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"},
            ]
        },
    }
    base["spec"].update(spec)
    return base


def mutate(p: dict[str, Any], store: PolicyStore) -> dict[str, Any]:
    mutated, plan = mutate_pod(p, "ml", store)
    assert mutated is not None
    assert_schema_valid(mutated)
    return mutated


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i["name"] == name)


def test_pod_without_annotation_is_untouched(store: PolicyStore) -> None:
    p = pod()
    del p["metadata"]["annotations"]
    assert mutate_pod(p, "ml", store) == (None, None)


def test_mirror_pod_is_untouched(store: PolicyStore) -> None:
    p = pod({"kubernetes.io/config.mirror": "abc"})
    assert mutate_pod(p, "ml", store) == (None, None)


def test_input_pod_is_not_modified(store: PolicyStore) -> None:
    p = pod()
    before = copy.deepcopy(p)
    mutate(p, store)
    assert p == before


def test_unknown_fields_survive(store: PolicyStore) -> None:
    p = pod()
    p["spec"]["futureField"] = {"x": 1}
    p["spec"]["containers"][0]["futureContainerField"] = "kept"
    p["status"] = {"phase": "Pending"}
    mutated, _ = mutate_pod(p, "ml", store)
    assert mutated["spec"]["futureField"] == {"x": 1}
    assert mutated["spec"]["containers"][0]["futureContainerField"] == "kept"
    assert mutated["status"] == {"phase": "Pending"}


def test_pvc_strategy_mounts_read_only_with_subpath_in_every_container(store: PolicyStore) -> None:
    m = mutate(pod(), store)
    assert by_name(m["spec"]["volumes"], "model-cache") == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "shared-models"}}
    for c in m["spec"]["containers"]:
        mount = by_name(c["volumeMounts"], "model-cache")
        assert mount == {"name": "model-cache", "mountPath": "/model-cache", "readOnly": True, "subPath": "llama/abc123"}
    assert m["metadata"]["annotations"]["model.cache/injected"] == "pvc/llama/abc123"


def test_downloader_carries_credentials_as_secret_refs_and_a_restricted_context(store: PolicyStore) -> None:
    m = mutate(pod(), store)
    (dl,) = m["spec"]["initContainers"]
    assert dl["name"] == "model-cache-download" and dl["image"] == "registry.local/model-cache:1"
    assert dl["args"][:5] == ["download", "--source", "hf://meta-llama/Llama-3.1-8B-Instruct", "--dest", "/model-cache/llama/abc123"]
    token = by_name(dl["env"], "HF_TOKEN")
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}
    assert by_name(dl["env"], "HF_ENDPOINT")["value"] == "https://hf-mirror.internal"
    sc = dl["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # Credentials never reach the serving containers.
    for c in m["spec"]["containers"]:
        assert all("secretKeyRef" not in str(e) for e in c.get("env", []))


def test_serving_env_is_policy_env_plus_cache_path_and_never_overrides(store: PolicyStore) -> None:
    p = pod()
    p["spec"]["containers"][0]["env"] = [{"name": "TRANSFORMERS_OFFLINE", "value": "0"}]
    m = mutate(p, store)
    env = m["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "TRANSFORMERS_OFFLINE", "value": "0"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "MODEL_CACHE_PATH", "value": "/model-cache"},
    ]


def test_memory_strategy_grows_first_serving_container_and_downloader(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/name": "small"}), store)
    server = m["spec"]["containers"][0]
    assert parse_quantity(server["resources"]["requests"]["memory"]) == parse_quantity("8Gi") + parse_quantity("1536Mi")
    assert parse_quantity(server["resources"]["limits"]["memory"]) == parse_quantity("10Gi") + parse_quantity("1536Mi")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "resources" not in m["spec"]["containers"][1]  # only the first serving container
    dl = m["spec"]["initContainers"][0]
    assert parse_quantity(dl["resources"]["limits"]["memory"]) == parse_quantity("512Mi") + parse_quantity("1536Mi")
    assert dl["resources"]["requests"]["memory"] == "256Mi"
    vol = by_name(m["spec"]["volumes"], "model-cache")
    assert vol["emptyDir"] == {"medium": "Memory", "sizeLimit": "1536Mi"}


def test_memory_strategy_sizes_for_a_zip_beside_its_contents_but_a_tar_streams(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(POLICY.replace("https://models.internal/small.tar.gz", "https://models.internal/small.zip"))
    m = mutate(pod({"model.cache/name": "small"}), PolicyStore(tmp_path))
    # While it unpacks, the zip (about the model's size) and its contents share the tmpfs.
    assert by_name(m["spec"]["volumes"], "model-cache")["emptyDir"]["sizeLimit"] == "3Gi"
    dl = m["spec"]["initContainers"][0]
    assert parse_quantity(dl["resources"]["limits"]["memory"]) == parse_quantity("512Mi") + parse_quantity("3Gi")
    # Once unpacked only the contents stay: the server's memory grows by the model's size.
    server = m["spec"]["containers"][0]
    assert parse_quantity(server["resources"]["limits"]["memory"]) == parse_quantity("10Gi") + parse_quantity("1536Mi")


def test_memory_strategy_leaves_unset_limits_unset(store: PolicyStore) -> None:
    p = pod({"model.cache/name": "small"})
    del p["spec"]["containers"][0]["resources"]
    m = mutate(p, store)
    assert "resources" not in m["spec"]["containers"][0]


def test_hostpath_strategy_by_annotation(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/strategy": "hostpath"}), store)
    assert by_name(m["spec"]["volumes"], "model-cache")["hostPath"] == {"path": "/var/lib/models", "type": "DirectoryOrCreate"}
    assert m["metadata"]["annotations"]["model.cache/injected"] == "hostpath/llama/abc123"


def test_containers_annotation_limits_targets(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/containers": "server"}), store)
    assert any(v["name"] == "model-cache" for v in m["spec"]["containers"][0]["volumeMounts"])
    assert "volumeMounts" not in m["spec"]["containers"][1]
    assert "env" not in m["spec"]["containers"][1]


def test_native_sidecars_come_first_then_downloader_then_own_init(store: PolicyStore) -> None:
    p = pod(initContainers=[
        {"name": "istio-proxy", "image": "istio/proxyv2:1.23.2", "restartPolicy": "Always"},
        {"name": "migrate", "image": "busybox:1.36"},
        {"name": "log-shipper", "image": "fluent/fluent-bit:3.1", "restartPolicy": "Always"},
        {"name": "warmup", "image": "busybox:1.36"},
    ])
    m = mutate(p, store)
    names = [c["name"] for c in m["spec"]["initContainers"]]
    assert names == ["istio-proxy", "migrate", "log-shipper", "model-cache-download", "warmup"]


def test_existing_dev_shm_is_kept(store: PolicyStore) -> None:
    p = pod(volumes=[{"name": "dshm", "emptyDir": {"medium": "Memory"}}])
    p["spec"]["containers"][1]["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    m = mutate(p, store)
    assert "model-cache-shm" not in [v["name"] for v in m["spec"]["volumes"]]
    assert all(mt["mountPath"] != "/dev/shm" for mt in m["spec"]["containers"][0]["volumeMounts"])


def test_pvc_gives_the_claim_to_the_downloaders_group_unless_the_pod_has_an_fs_group(store: PolicyStore) -> None:
    m = mutate(pod(), store)
    assert m["spec"]["securityContext"] == {"fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch"}
    own = mutate(pod(securityContext={"fsGroup": 2000, "runAsUser": 1000}), store)
    assert own["spec"]["securityContext"] == {"fsGroup": 2000, "runAsUser": 1000}
    # Nothing to write, nothing to give: no downloader, no fsGroup.
    assert "securityContext" not in mutate(pod({"model.cache/preload": "false"}), store)["spec"]


def test_hostpath_prepares_the_model_directory_as_root_with_chown_only_before_the_downloader(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/strategy": "hostpath"}), store)
    prepare, download = m["spec"]["initContainers"][:2]
    assert (prepare["name"], download["name"]) == ("model-cache-prepare", "model-cache-download")
    assert prepare["command"] == ["install", "-d", "-o", "10001", "-g", "10001", "-m", "0755", "/model-cache/llama"]
    assert prepare["image"] == download["image"]
    context = prepare["securityContext"]
    assert context["runAsUser"] == 0 and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
    # The node directory gets no fsGroup (the kubelet would not apply it).
    assert "securityContext" not in m["spec"]
    assert "model-cache-prepare" not in [c["name"] for c in mutate(pod(), store)["spec"]["initContainers"]]


def test_injected_init_containers_carry_no_service_account_token(store: PolicyStore) -> None:
    for annotations in ({}, {"model.cache/strategy": "hostpath"}, {"model.cache/name": "small"}):
        m = mutate(pod(annotations), store)
        assert by_name(m["spec"]["volumes"], "model-cache-no-token") == {
            "name": "model-cache-no-token", "emptyDir": {"sizeLimit": "1Mi"}}
        for c in m["spec"]["initContainers"]:
            if c["name"].startswith("model-cache-"):
                assert {"name": "model-cache-no-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        "readOnly": True} in c["volumeMounts"], c["name"]
        for c in m["spec"]["containers"]:
            assert all(mt["name"] != "model-cache-no-token" for mt in c.get("volumeMounts") or [])
    no_init = mutate(pod({"model.cache/preload": "false"}), store)
    assert all(v["name"] != "model-cache-no-token" for v in no_init["spec"]["volumes"])


def test_no_token_volume_name_clash_is_denied(store: PolicyStore) -> None:
    p = pod(volumes=[{"name": "model-cache-no-token", "emptyDir": {}}])
    with pytest.raises(Denied, match='already has a volume named "model-cache-no-token"'):
        mutate_pod(p, "ml", store)


def test_shm_size_annotation(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/shm-size": "16Gi"}), store)
    assert by_name(m["spec"]["volumes"], "model-cache-shm")["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    m0 = mutate(pod({"model.cache/shm-size": "0"}), store)
    assert all(v["name"] != "model-cache-shm" for v in m0["spec"]["volumes"])


def test_preload_false_adds_no_downloader(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/preload": "false"}), store)
    assert "initContainers" not in m["spec"]


def test_mount_path_annotation(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/mount-path": "/models/llama/"}), store)
    mount = by_name(m["spec"]["containers"][0]["volumeMounts"], "model-cache")
    assert mount["mountPath"] == "/models/llama"
    assert by_name(m["spec"]["containers"][0]["env"], "MODEL_CACHE_PATH")["value"] == "/models/llama"


def test_oci_credentials_become_image_pull_secrets(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(textwrap.dedent("""
        apiVersion: model.cache/v1alpha1
        kind: ModelCachePolicy
        models:
          car: {source: "oci://registry.local/car@sha256:0000000000000000000000000000000000000000000000000000000000000000", size: 2Gi, strategy: oci, authSecretName: regcred}
    """))
    m = mutate(pod({"model.cache/name": "car"}), PolicyStore(tmp_path))
    assert m["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert m["spec"]["initContainers"][0]["name"] == "model-cache-oci-copy"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"model.cache/name": "gpt-5"}, 'model "gpt-5" is not in the model-cache policy for namespace ml; known models: car, llama, small'),
        ({"model.cache/strategy": "image"}, 'strategy "image" (model.cache/strategy) is not allowed in namespace ml; allowed: pvc, hostpath, memory'),
        ({"model.cache/strategy": "ramdisk"}, 'model.cache/strategy: "ramdisk" is not a strategy; use one of pvc, hostpath, memory, oci, image'),
        ({"model.cache/preload": "yes"}, 'model.cache/preload: "yes" must be "true" or "false"'),
        ({"model.cache/shm-size": "lots"}, 'model.cache/shm-size: "lots" is not a Kubernetes quantity'),
        ({"model.cache/mount-path": "models"}, 'model.cache/mount-path: "models" must be an absolute path'),
        ({"model.cache/mount-path": "/dev/shm"}, "would hide a system directory"),
        ({"model.cache/containers": "vllm"}, "model.cache/containers names vllm, not in this pod; its containers are server, proxy"),
        ({"model.cache/strategey": "pvc"}, "unknown annotation model.cache/strategey (did you mean model.cache/strategy?);"),
        ({"model.cache/stratgy": "pvc"}, "unknown annotation model.cache/stratgy (did you mean model.cache/strategy?);"),
        ({"model.cache/gpu-count": "2"}, "unknown annotation model.cache/gpu-count; model-cache reads"),
        ({"model.cache/name": "car"}, 'strategy "pvc" cannot serve an oci:// image'),
    ],
)
def test_denials_name_the_problem_and_the_fix(store: PolicyStore, annotations: dict[str, str], expected: str) -> None:
    with pytest.raises(Denied) as err:
        mutate_pod(pod(annotations), "ml", store)
    assert expected in str(err.value)


def test_strategy_not_allowed_from_policy_is_denied(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(POLICY.replace("allowedStrategies: [pvc, hostpath, memory]", "allowedStrategies: [pvc]"))
    with pytest.raises(Denied, match="the policy's strategy for small.*allowed: pvc"):
        mutate_pod(pod({"model.cache/name": "small"}), "ml", PolicyStore(tmp_path))


def test_existing_volume_name_is_denied(store: PolicyStore) -> None:
    with pytest.raises(Denied, match='already has a volume named "model-cache", which model-cache injects; rename that volume'):
        mutate_pod(pod(volumes=[{"name": "model-cache", "emptyDir": {}}]), "ml", store)


def test_existing_mount_path_is_denied(store: PolicyStore) -> None:
    p = pod(volumes=[{"name": "weights", "emptyDir": {}}])
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "weights", "mountPath": "/model-cache/"}]
    with pytest.raises(Denied, match="container server already mounts weights at /model-cache; set model.cache/mount-path"):
        mutate_pod(p, "ml", store)


def test_no_policy_for_namespace_is_denied(store: PolicyStore) -> None:
    with pytest.raises(Denied, match="no model-cache policy for namespace other: .*other.yaml"):
        mutate_pod(pod(), "other", store)


@pytest.mark.parametrize("annotations", [{"model.cache/strategy": "ramdisk"}, {"model.cache/preload": "yes"},
                                         {"model.cache/mount-path": "models"}, {"model.cache/shm-size": "lots"}])
def test_a_bad_annotation_denies_the_pod_with_its_reason(store: PolicyStore, annotations: dict[str, str]) -> None:
    """What the API server gets for an annotation the webhook cannot read: a
    403 denial carrying the words that name the annotation and the fix."""
    p = pod(annotations)
    with pytest.raises(AnnotationError) as err:
        mutate_pod(p, "ml", store)
    request = pod_review(p, namespace="ml")["request"]
    response = admission.answer_mutation(request, store).review()["response"]
    assert response == {"uid": request["uid"], "allowed": False, "status": {"code": 403, "message": str(err.value)}}


def test_reinvocation_after_another_webhook_keeps_our_work(store: PolicyStore) -> None:
    """reinvocationPolicy: IfNeeded: a later webhook (e.g. Istio) changes the pod and
    we are called again; the injected annotation stops a second injection."""
    m = mutate(pod(), store)
    m["spec"]["initContainers"].insert(0, {"name": "istio-init", "image": "istio/proxyv2:1.23.2"})
    assert mutate_pod(m, "ml", store) == (None, None)
    stripped = copy.deepcopy(m)
    del stripped["metadata"]["annotations"]["model.cache/injected"]
    assert mutate_pod(stripped, "ml", store) == (None, None)
    # Our volume alone (annotation and init container gone) also marks the pod as done.
    del stripped["spec"]["initContainers"][1]
    assert stripped["spec"]["initContainers"][0]["name"] == "istio-init"
    assert mutate_pod(stripped, "ml", store) == (None, None)


MESH_PROXY = {"name": "mesh-proxy", "image": "registry.example.com/mesh-proxy:1.0", "restartPolicy": "Always"}


def test_reinvoked_after_a_sidecar_was_appended_the_downloader_moves_after_it(store: PolicyStore) -> None:
    """A later webhook that appends its native sidecar after our downloader
    reinvokes us: the answer moves our init containers to just after it, where
    a first injection into the pod with that sidecar would have put them."""
    m = mutate(pod(initContainers=[{"name": "migrate", "image": "busybox:1.36"}]), store)
    assert [c["name"] for c in m["spec"]["initContainers"]] == ["model-cache-download", "migrate"]
    meshed = copy.deepcopy(m)
    meshed["spec"]["initContainers"].append(copy.deepcopy(MESH_PROXY))
    request = pod_review(meshed, namespace="ml")["request"]
    answer = admission.answer_mutation(request, store)
    assert (answer.result, answer.strategy) == ("mutated", "pvc")
    after = jsonpatch.apply_patch(meshed, answer.patch)
    assert [c["name"] for c in after["spec"]["initContainers"]] == ["migrate", "mesh-proxy", "model-cache-download"]
    assert by_name(after["spec"]["initContainers"], "model-cache-download") == by_name(
        m["spec"]["initContainers"], "model-cache-download")
    assert after["spec"]["volumes"] == meshed["spec"]["volumes"] and after["metadata"] == meshed["metadata"]
    # The same sidecar there from the start: the same order.
    first = mutate(pod(initContainers=[{"name": "migrate", "image": "busybox:1.36"}, copy.deepcopy(MESH_PROXY)]), store)
    assert [c["name"] for c in first["spec"]["initContainers"]] == ["migrate", "mesh-proxy", "model-cache-download"]
    # In place already (prepended sidecar, an ordinary init container appended): no patch.
    for other in (lambda inits: inits.insert(0, copy.deepcopy(MESH_PROXY)),
                  lambda inits: inits.append({"name": "late", "image": "busybox:1.36"})):
        again = copy.deepcopy(m)
        other(again["spec"]["initContainers"])
        answer = admission.answer_mutation(pod_review(again, namespace="ml")["request"], store)
        assert (answer.result, answer.patch) == ("skipped", None)
    # Our container names without our marker: a stranger's pod, left alone.
    stranger = copy.deepcopy(meshed)
    del stranger["metadata"]["annotations"]["model.cache/injected"]
    assert admission.answer_mutation(pod_review(stranger, namespace="ml")["request"], store).patch is None


def test_shm_volume_name_clash_is_denied(store: PolicyStore) -> None:
    with pytest.raises(Denied, match='already has a volume named "model-cache-shm"'):
        mutate_pod(pod(volumes=[{"name": "model-cache-shm", "emptyDir": {}}]), "ml", store)
