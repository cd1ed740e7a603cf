"""model-cache in a real cluster (kind): installed from manifests/, it
certifies itself, mutates annotated pods for every strategy, returns warnings
to kubectl, its downloader fetches from an HTTP server in the cluster once,
and a second replica takes the fast path. See conftest.py for how to run."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.e2e.kind import IMAGE, NS, Cluster, sleeper
from tests.helpers import deployment, pod_template

pytestmark = pytest.mark.e2e
CONTENT = "model-cache e2e weights\n"


def model_deployment(name: str, model: str, replicas: int = 1, strategy: str | None = None) -> str:
    """A Deployment NAME of sleepers asking for MODEL, as kubectl input."""
    annotations = {"model.cache/name": model}
    if strategy:
        annotations["model.cache/strategy"] = strategy
    template = pod_template(sleeper(name, annotations), {"app": name})
    return json.dumps(deployment(template, name, namespace=NS, replicas=replicas))


def pods(c: Cluster, app: str) -> list[dict[str, Any]]:
    return c.get("pods", "-n", NS, "-l", f"app={app}")["items"]


def ready_pods(c: Cluster, app: str, n: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        items = pods(c, app)
        ready = [p for p in items if any(cond["type"] == "Ready" and cond["status"] == "True"
                                         for cond in p["status"].get("conditions", []))]
        return ready if len(ready) >= n else None

    return c.wait_until(f"{n} ready pod(s) of {app}", check, timeout=240)


def origin_gets(c: Cluster) -> int:
    # http.server logs each request on stderr: the container log.
    log = c.kubectl("-n", NS, "logs", "deployment/model-origin").stdout
    return sum(1 for line in log.splitlines() if '"GET /weights.bin' in line)


def test_the_webhook_certified_itself(cluster: Cluster) -> None:
    secret = cluster.get("secret", "-n", "model-cache", "model-cache-tls")
    assert secret["type"] == "kubernetes.io/tls"
    bundle = secret["data"]["ca-bundle.crt"]
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        for hook in cluster.get(kind, "model-cache")["webhooks"]:
            assert hook["clientConfig"]["caBundle"] == bundle


@pytest.mark.parametrize("strategy,model", [("pvc", "tiny"), ("hostpath", "tiny"), ("memory", "tiny-memory"),
                                            ("oci", "tiny-oci"), ("image", "tiny-image")])
def test_annotated_deployment_is_mutated(cluster: Cluster, strategy: str, model: str) -> None:
    if strategy == "image":
        minor = int(json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["minor"].rstrip("+"))
        if minor < 33:
            pytest.skip("image volumes need Kubernetes 1.33 or newer")
    name = f"m-{strategy}"
    cluster.kubectl("apply", "-f", "-", input=model_deployment(name, model, strategy=strategy))
    (pod,) = ready_pods(cluster, name, 1)[:1]
    assert pod["metadata"]["annotations"]["model.cache/injected"].startswith(f"{strategy}/{model}/")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "model-cache" in volumes
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/model-cache"]["readOnly"] is True
    if strategy in ("pvc", "hostpath", "memory"):
        got = cluster.kubectl("-n", NS, "exec", pod["metadata"]["name"], "-c", "serve", "--",
                              "cat", "/model-cache/weights.bin").stdout
        assert got == CONTENT
        statuses = pod["status"]["initContainerStatuses"]
        assert all(s["state"]["terminated"]["exitCode"] == 0 for s in statuses)


def test_pods_without_the_annotation_pass_untouched(cluster: Cluster) -> None:
    out = cluster.kubectl("-n", NS, "run", "plain", f"--image={IMAGE}", "--restart=Never",
                          "--command", "--dry-run=server", "-o", "json", "--", "sleep", "1").stdout
    pod = json.loads(out)
    assert "model.cache/injected" not in (pod["metadata"].get("annotations") or {})


def test_warnings_come_back_through_kubectl_apply(cluster: Cluster) -> None:
    # A bare Pod, so that kubectl itself makes the request the warnings answer.
    pod = json.dumps(sleeper("warned", {"model.cache/name": "tiny"}))
    result = cluster.kubectl("apply", "-f", "-", input=pod)
    # The e2e PVC is ReadWriteOnce: the validating half warns about it.
    assert "Warning:" in result.stderr, result.stderr
    assert "ReadWriteOnce" in result.stderr or "RWO" in result.stderr, result.stderr
    # A Deployment's pods are made by a controller: the workloads webhook
    # checks its template so that the person applying it sees the warnings.
    result = cluster.kubectl("apply", "-f", "-", input=model_deployment("warned-deploy", "tiny-memory", strategy="memory"))
    assert "Warning:" in result.stderr, result.stderr


def test_downloader_fetches_once_and_a_second_replica_takes_the_fast_path(cluster: Cluster) -> None:
    before = origin_gets(cluster)
    cluster.kubectl("apply", "-f", "-", input=model_deployment("fast-path", "tiny", strategy="pvc"))
    ready_pods(cluster, "fast-path", 1)
    # The pvc test may have downloaded `tiny` to this PVC already; if not,
    # this replica did, once.
    first = origin_gets(cluster)
    assert first - before <= 1
    cluster.kubectl("-n", NS, "scale", "deployment/fast-path", "--replicas=2")
    ready_pods(cluster, "fast-path", 2)
    assert origin_gets(cluster) == first, "the second replica downloaded again"


def test_a_blanked_cabundle_is_patched_back(cluster: Cluster) -> None:
    want = cluster.get("mutatingwebhookconfiguration", "model-cache")["webhooks"][0]["clientConfig"]["caBundle"]
    cluster.kubectl("patch", "mutatingwebhookconfiguration", "model-cache", "--type=json",
                    "-p", '[{"op":"remove","path":"/webhooks/0/clientConfig/caBundle"}]')

    def restored() -> bool:
        hook = cluster.get("mutatingwebhookconfiguration", "model-cache")["webhooks"][0]
        return hook["clientConfig"].get("caBundle") == want

    cluster.wait_until("caBundle patched back", restored, timeout=120)
    base64.b64decode(want)  # well formed
