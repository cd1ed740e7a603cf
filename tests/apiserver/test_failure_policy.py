"""failurePolicy with the webhook down: annotated pods are refused (Fail),
every other pod is created (the matchConditions keep them away), and a
workload with an annotated template and a policy edit still go through (Ignore)."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane
from tests.apiserver.pods import annotated_deployment, simple_pod
from tests.apiserver.served import Webhook


@pytest.fixture()
def stopped(webhook: Webhook) -> Iterator[Webhook]:
    webhook.stop()
    try:
        yield webhook
    finally:
        webhook.start()  # the other tests of the session need it back


def test_with_the_webhook_down_annotated_pods_are_refused_and_others_created(stopped: Webhook,
                                                                            control_plane: ControlPlane) -> None:
    core = control_plane.core
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("failure", simple_pod("f-asks", {"model.cache/name": "tiny"}))
    text = json.loads(err.value.body)["message"]
    assert 'failed calling webhook "pods.mutate.model.cache"' in text, text
    created = json.loads(core.create_namespaced_pod("failure", simple_pod("f-plain"), _preload_content=False).data)
    assert created["metadata"]["name"] == "f-plain"
    # A workload's template check is advisory: the Deployment is created, its pods would wait.
    deployment = annotated_deployment("f-deploy", "f", "tiny", replicas=0)
    k8s.AppsV1Api(control_plane.api_client()).create_namespaced_deployment("failure", deployment)
    # A policy edit is not locked out by the webhook that it may be repairing.
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "policy-while-down", "namespace": "model-cache", "labels": {"model.cache/policy": "true"}},
          "data": {"ml.yaml": "apiVersion: model.cache/v1alpha1\nkind: ModelCachePolicy\n"}}
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(cm))
