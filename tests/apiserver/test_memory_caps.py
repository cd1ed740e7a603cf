"""A LimitRange or a ResourceQuota that refuses the memory the mutation raised
(issue 17): `kubectl apply` of the Deployment names it, under the shipped RBAC,
and the API server does refuse such a pod (the warning is true)."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.apiserver.controlplane import ControlPlane
from tests.apiserver.pods import simple_pod
from tests.apiserver.served import Webhook
from tests.helpers import deployment, pod_template

# qwen2-0.5b (1Gi) of _default.yaml, which serves this namespace, in memory:
# the server's 512Mi limit becomes 1.5Gi, the downloader's 1Gi 2Gi.
ASKS = {"model.cache/name": "qwen2-0.5b", "model.cache/strategy": "memory"}


def capped(cp: ControlPlane, name: str, objects: list[dict]) -> str:
    cp.namespace(name)
    cp.kubectl("-n", name, "apply", "-f", "-", input=yaml.safe_dump_all(objects))
    return name


@pytest.mark.parametrize(("bound", "warning", "refusal"), [
    ({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "one-gi-per-container"},
      "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}},
     "LimitRange one-gi-per-container caps container memory at 1Gi; server gets 1.5Gi with model qwen2-0.5b",
     "maximum memory usage per Container is 1Gi"),
    ({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "team-memory"},
      "spec": {"hard": {"limits.memory": "1Gi"}}},
     "ResourceQuota team-memory has 1Gi of limits.memory left; a pod of model qwen2-0.5b needs 2Gi",
     "exceeded quota: team-memory"),
], ids=["limitrange", "quota"])
def test_a_bound_that_refuses_the_raised_limit_is_named_at_apply(webhook: Webhook, control_plane: ControlPlane,
                                                                   bound: dict, warning: str, refusal: str) -> None:
    cp = control_plane
    namespace = capped(cp, f"capped-{bound['kind'].lower()}", [bound])
    if bound["kind"] == "ResourceQuota":
        # No quota controller runs here: its first count, written as it would write it.
        status = {"status": {"hard": bound["spec"]["hard"], "used": {"limits.memory": "0"}}}
        cp.kubectl("-n", namespace, "patch", "resourcequota", bound["metadata"]["name"], "--subresource=status",
                   "--type=merge", "-p", json.dumps(status))
    workload = deployment(pod_template(simple_pod("x", ASKS), {"app": "capped"}), "capped", replicas=1)
    out = cp.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(workload))
    # Its ReplicaSet would retry the refused pod for as long as it exists, each
    # try a /mutate call that other tests' review counts would see.
    cp.kubectl("-n", namespace, "delete", "deployment", "capped", "--wait=false")
    assert f"Warning: {warning}" in out.stderr, out.stderr
    assert "could not check" not in out.stderr, out.stderr
    # What the ReplicaSet would meet: the API server refuses the pod.
    with pytest.raises(ApiException) as err:
        cp.core.create_namespaced_pod(namespace, simple_pod("capped", ASKS))
    assert refusal in json.loads(err.value.body)["message"]
