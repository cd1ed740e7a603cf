"""The fake API server as the real `kubernetes` client sees it: the verbs, the
Status bodies the client's callers read, and the fault rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.fakes import FakeApiServer
from tests.helpers import WEBHOOKS_MANIFEST


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer() as f:
        yield f


@pytest.fixture
def core(fake: FakeApiServer, tmp_path: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(fake.write_kubeconfig(tmp_path / "kc"))))


def failure(call: object) -> tuple[int, dict]:
    with pytest.raises(ApiException) as err:
        call()  # type: ignore[operator]
    return err.value.status, json.loads(err.value.body)


def test_create_read_list_patch_replace_delete(fake: FakeApiServer, core: client.CoreV1Api) -> None:
    body = {"metadata": {"name": "cfg"}, "data": {"a": "1"}}
    created = core.create_namespaced_config_map("ml", body)
    assert created.metadata.namespace == "ml" and created.metadata.uid
    code, status = failure(lambda: core.create_namespaced_config_map("ml", body))
    assert (code, status["reason"], status["message"]) == (409, "AlreadyExists", 'configmaps "cfg" already exists')
    assert [c.metadata.name for c in core.list_namespaced_config_map("ml").items] == ["cfg"]
    assert core.list_namespaced_config_map("other").items == []

    patched = core.patch_namespaced_config_map("cfg", "ml", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    assert patched.metadata.uid == created.metadata.uid
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    stale = {**body, "metadata": {"name": "cfg", "resourceVersion": created.metadata.resource_version}}
    code, status = failure(lambda: core.replace_namespaced_config_map("cfg", "ml", stale))
    assert (code, status["reason"]) == (409, "Conflict") and "the object has been modified" in status["message"]

    core.delete_namespaced_config_map("cfg", "ml")
    code, status = failure(lambda: core.read_namespaced_config_map("cfg", "ml"))
    assert (code, status["reason"], status["message"]) == (404, "NotFound", 'configmaps "cfg" not found')
    assert fake.get("configmaps", "cfg", "ml") is None


def test_forbidden_in_the_api_servers_words(fake: FakeApiServer, core: client.CoreV1Api) -> None:
    fake.add_namespace("ml")
    fake.forbid("/secrets/")
    code, status = failure(lambda: core.read_namespaced_secret("s", "ml"))
    assert code == 403 and status["message"] == (
        'secrets "s" is forbidden: User "system:serviceaccount:model-cache:model-cache" cannot get resource '
        '"secrets" in API group "" in the namespace "ml"')
    assert core.read_namespace("ml").metadata.name == "ml"  # the rule matches its path only


def test_rules_for_the_next_n_requests_then_healed(fake: FakeApiServer, core: client.CoreV1Api) -> None:
    fake.add_secret("ml", "s", {"k": "v"})
    fake.fail("/secrets/s$", 503, method="GET", times=2)
    assert failure(lambda: core.read_namespaced_secret("s", "ml"))[0] == 503
    assert failure(lambda: core.read_namespaced_secret("s", "ml"))[0] == 503
    assert core.read_namespaced_secret("s", "ml").data == {"k": "dg=="}
    fake.fail("/secrets/", 500)
    assert failure(lambda: core.read_namespaced_secret("s", "ml"))[0] == 500
    fake.heal()
    assert core.read_namespaced_secret("s", "ml").metadata.name == "s"
    assert fake.count("/secrets/s$", "GET") == 5 and fake.count(method="PUT") == 0


def test_a_wrong_token_is_401_and_recorded(fake: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = fake.write_kubeconfig(tmp_path / "kc", token="expired")
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    code, status = failure(lambda: core.read_namespace("ml"))
    assert (code, status["reason"]) == (401, "Unauthorized")
    assert [(r.method, r.path, r.authorization) for r in fake.requests] == [
        ("GET", "/api/v1/namespaces/ml", "Bearer expired")]


def test_seeded_webhook_configurations_take_a_json_patch(fake: FakeApiServer, tmp_path: Path) -> None:
    fake.seed_manifests(WEBHOOKS_MANIFEST)
    api = client.AdmissionregistrationV1Api(config.new_client_from_config(
        config_file=str(fake.write_kubeconfig(tmp_path / "kc"))))
    ops = [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Y2E="}]
    api.patch_mutating_webhook_configuration("model-cache", ops)
    assert fake.get("mutatingwebhookconfigurations", "model-cache")["webhooks"][0]["clientConfig"]["caBundle"] == "Y2E="
    code, status = failure(lambda: api.read_validating_webhook_configuration("nope"))
    assert (code, status["message"]) == (
        404, 'validatingwebhookconfigurations.admissionregistration.k8s.io "nope" not found')
