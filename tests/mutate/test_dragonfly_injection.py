"""hostPath.dragonfly (per namespace) and a model's `dragonfly` (per model):
what the webhook injects so that a hostpath pod's downloader goes through the
node's dfdaemon (docs/dragonfly.md). The downloader side, with a real daemon,
is tests/dragonfly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.helpers import assert_schema_valid
from tests.mutate.test_mutate import by_name, pod
from webhook.mutate.pod import mutate_pod
from webhook.policy import PolicyStore
from webhook.policy.schema import ModelCachePolicy

POLICY = """
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults:
  strategy: hostpath
  allowedStrategies: [pvc, hostpath]
  hostPath:
    path: /var/lib/models
    dragonfly: {enabled: true, socketPath: /run/dragonfly/dfdaemon.sock}
models:
  llama:
    source: hf://meta-llama/Llama-3.1-8B-Instruct
    revision: abc123
    size: 16Gi
  strict:
    source: hf://org/strict
    size: 1Gi
    dragonfly: {ifUnavailable: refuse}
  alone:
    source: https://models.internal/alone.bin
    size: 1Gi
    dragonfly: {enabled: false}
"""


@pytest.fixture()
def store(tmp_path: Path) -> PolicyStore:
    (tmp_path / "ml.yaml").write_text(POLICY)
    return PolicyStore(tmp_path)


def mutate(p: dict[str, Any], store: PolicyStore) -> dict[str, Any]:
    mutated, _ = mutate_pod(p, "ml", store)
    assert mutated is not None
    assert_schema_valid(mutated)
    return mutated


def downloader(m: dict[str, Any]) -> dict[str, Any]:
    return by_name(m["spec"]["initContainers"], "model-cache-download")


def test_hostpath_through_dragonfly_mounts_the_socket_directory_read_only(store: PolicyStore) -> None:
    m = mutate(pod(), store)
    assert by_name(m["spec"]["volumes"], "model-cache-dragonfly") == {
        "name": "model-cache-dragonfly", "hostPath": {"path": "/run/dragonfly", "type": "DirectoryOrCreate"}}
    d = downloader(m)
    assert {"name": "model-cache-dragonfly", "mountPath": "/run/model-cache-dragonfly", "readOnly": True} in d["volumeMounts"]
    args = d["args"]
    assert args[args.index("--dragonfly-socket") + 1] == "/run/model-cache-dragonfly/dfdaemon.sock"
    assert args[args.index("--dragonfly-if-unavailable") + 1] == "direct"
    # Only the downloader sees the socket: not the preparation, not the serving containers.
    for c in m["spec"]["containers"] + [by_name(m["spec"]["initContainers"], "model-cache-prepare")]:
        assert all(v["name"] != "model-cache-dragonfly" for v in c.get("volumeMounts") or [])


def test_a_model_overrides_the_namespace_field_by_field(store: PolicyStore) -> None:
    args = downloader(mutate(pod({"model.cache/name": "strict"}), store))["args"]
    assert args[args.index("--dragonfly-if-unavailable") + 1] == "refuse"
    assert args[args.index("--dragonfly-socket") + 1] == "/run/model-cache-dragonfly/dfdaemon.sock"
    m = mutate(pod({"model.cache/name": "alone"}), store)
    assert "--dragonfly-socket" not in downloader(m)["args"]
    assert all(v["name"] != "model-cache-dragonfly" for v in m["spec"]["volumes"])


def test_only_hostpath_goes_through_dragonfly(store: PolicyStore) -> None:
    """A pvc is shared by its nodes already: no daemon, no socket."""
    m = mutate(pod({"model.cache/strategy": "pvc"}), store)
    assert "--dragonfly-socket" not in downloader(m)["args"]
    assert all(v["name"] != "model-cache-dragonfly" for v in m["spec"]["volumes"])


def test_off_unless_the_policy_turns_it_on(tmp_path: Path) -> None:
    (tmp_path / "ml.yaml").write_text(POLICY.replace("enabled: true, ", ""))
    m = mutate(pod(), PolicyStore(tmp_path))
    assert "--dragonfly-socket" not in downloader(m)["args"]


def test_preload_off_needs_no_socket(store: PolicyStore) -> None:
    m = mutate(pod({"model.cache/preload": "false"}), store)
    assert all(v["name"] != "model-cache-dragonfly" for v in m["spec"]["volumes"])


def test_a_pod_volume_of_that_name_is_denied(store: PolicyStore) -> None:
    from webhook.errors import Denied

    with pytest.raises(Denied, match='volume named "model-cache-dragonfly"'):
        mutate_pod(pod(volumes=[{"name": "model-cache-dragonfly", "emptyDir": {}}]), "ml", store)


@pytest.mark.parametrize("bad, why", [
    ({"ifUnavailable": "maybe"}, "direct"),
    ({"socketPath": "run/dfdaemon.sock"}, "absolute path"),
    ({"enabled": True, "sockets": "/x"}, "sockets"),
])
def test_bad_settings_are_refused_with_the_field(bad: dict[str, Any], why: str) -> None:
    doc = {"apiVersion": "model.cache/v1alpha1", "kind": "ModelCachePolicy",
           "defaults": {"hostPath": {"dragonfly": bad}}}
    with pytest.raises(ValidationError, match=why):
        ModelCachePolicy.model_validate(doc)
