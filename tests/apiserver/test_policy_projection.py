"""A policy ConfigMap edit reaching the running webhook (issue 17), and a
namespace with no policy. The webhook reads files: the kubelet projects the
ConfigMap into its pod as `<key> -> ..data/<key>`, `..data -> ..<timestamp>/`,
and applies an edit by writing a new timestamped directory and swapping the
`..data` symlink in one rename (its AtomicWriter). `project` does the same
with the policies directory of the running `model-cache serve`."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane, wait_for
from tests.apiserver.pods import simple_pod
from tests.apiserver.served import WEBHOOK_NS, Webhook

CONFIGMAP = "model-cache-policies"
EDITED_POLICY = """\
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults:
  pvc: {claimName: edited-models}
models:
  edited-model:
    source: https://models.example.com/edited/weights.bin
    size: 1Mi
"""


def project(directory: Path, data: dict[str, str]) -> None:
    """Makes DIRECTORY show DATA as the kubelet shows a ConfigMap volume, in
    its order: the new files in a new hidden directory, then `..data` swapped
    to it in one rename, then the key symlinks added or removed."""
    stamp = directory / f"..{dt.datetime.now(dt.timezone.utc).strftime('%Y_%m_%d_%H_%M_%S.%f')}"
    stamp.mkdir()
    for key, value in data.items():
        (stamp / key).write_text(value)
    data_link = directory / "..data"
    old = Path(os.readlink(data_link)) if data_link.is_symlink() else None
    tmp = directory / "..data_tmp"
    tmp.symlink_to(stamp.name)
    os.rename(tmp, data_link)  # the one atomic step: readers see the old set or the new one
    for key in data:
        link = directory / key
        if not link.is_symlink():
            staged = directory / f".{key}.link"
            staged.symlink_to(f"..data/{key}")
            os.rename(staged, link)  # replaces a plain file of the same name at once
    for entry in directory.iterdir():
        if not entry.name.startswith(".") and entry.name not in data:
            entry.unlink()
    if old is not None:
        shutil.rmtree(directory / old)


def configmap_data(cp: ControlPlane) -> dict[str, str]:
    return dict(cp.core.read_namespaced_config_map(CONFIGMAP, WEBHOOK_NS).data or {})


def edit_configmap(cp: ControlPlane, key: str, value: str | None) -> None:
    """kubectl patch of one key (None: removed), through the policies webhook."""
    patch = {"data": {key: value}}
    cp.kubectl("-n", WEBHOOK_NS, "patch", "configmap", CONFIGMAP, "--type=merge", "-p", json.dumps(patch))


@pytest.fixture()
def projected(webhook: Webhook, control_plane: ControlPlane) -> Iterator[Path]:
    """The webhook's policies directory in the kubelet's layout; the ConfigMap as it was, afterwards."""
    directory = webhook.root / "policies"
    before = configmap_data(control_plane)
    project(directory, before)
    try:
        yield directory
    finally:
        for key in set(configmap_data(control_plane)) - set(before):
            edit_configmap(control_plane, key, None)
        for key, value in before.items():
            edit_configmap(control_plane, key, value)
        project(directory, configmap_data(control_plane))


def dry_run(cp: ControlPlane, namespace: str, model: str) -> dict[str, Any] | str:
    """The pod as admitted, or the message it was refused with."""
    try:
        resp = cp.core.create_namespaced_pod(namespace, simple_pod("probe", {"model.cache/name": model}),
                                             dry_run="All", _preload_content=False)
    except ApiException as err:
        return json.loads(err.body)["message"]
    return json.loads(resp.data)


def injected_claim(answer: dict[str, Any] | str) -> str | None:
    if isinstance(answer, str):
        return None
    volumes = {v["name"]: v for v in answer["spec"].get("volumes", [])}
    return (volumes.get("model-cache") or {}).get("persistentVolumeClaim", {}).get("claimName")


def test_a_policy_configmap_edit_reaches_the_running_server(projected: Path, control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.namespace("edited")
    before = dry_run(cp, "edited", "edited-model")
    assert isinstance(before, str) and 'model "edited-model" is not in the model-cache policy for namespace edited' \
        in before, before
    edit_configmap(cp, "edited.yaml", EDITED_POLICY)
    project(projected, configmap_data(cp))  # what the kubelet does on its next sync
    assert (projected / "edited.yaml").is_symlink() and "..data" in os.readlink(projected / "edited.yaml")
    wait_for("the edited policy in force", lambda: injected_claim(dry_run(cp, "edited", "edited-model"))
             == "edited-models", timeout=30)
    # Its removal reaches the server the same way.
    edit_configmap(cp, "edited.yaml", None)
    project(projected, configmap_data(cp))
    wait_for("the removed policy gone", lambda: isinstance(dry_run(cp, "edited", "edited-model"), str), timeout=30)


def test_an_annotated_pod_in_a_namespace_without_a_policy(projected: Path, control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.namespace("no-policy")
    # _default.yaml serves every namespace without a file: its model is injected, another is refused.
    assert injected_claim(dry_run(cp, "no-policy", "qwen2-0.5b")) == "model-cache"
    refused = dry_run(cp, "no-policy", "tiny")
    assert isinstance(refused, str) and refused.startswith(
        'admission webhook "pods.mutate.model.cache" denied the request: '
        'model "tiny" is not in the model-cache policy for namespace no-policy; known models: '), refused
    # Without _default.yaml: no policy at all, and the message says whom to ask for what.
    edit_configmap(cp, "_default.yaml", None)
    project(projected, configmap_data(cp))

    def without_default() -> str | None:
        answer = dry_run(cp, "no-policy", "qwen2-0.5b")
        return answer if isinstance(answer, str) else None

    text = wait_for("_default.yaml gone from the server", without_default, timeout=30)
    assert "no model-cache policy for namespace no-policy: ask the platform team to add no-policy.yaml " \
           "(or _default.yaml)" in text, text
