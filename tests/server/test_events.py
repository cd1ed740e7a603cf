"""Warnings about controller-made pods become Events on the controller, written
through the real kubernetes client (issue 12: visible where people look)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask.testing import FlaskClient

from tests.fakes import FakeApiServer
from tests.helpers import POLICIES, pod_review, post
from webhook.server.events import event_for

OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "llama-vllm-5d8f7", "uid": "1b2c", "controller": True}


def replica(dry_run: bool = False, owner: dict[str, Any] | None = OWNER) -> dict[str, Any]:
    """A pod of a Deployment as the ReplicaSet controller creates it, already injected."""
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "llama-vllm-5d8f7-", "namespace": "llm",
                     "ownerReferences": [owner] if owner else [],
                     "annotations": {"model.cache/name": "llama-3-8b",
                                     "model.cache/injected": "pvc/llama-3-8b/0e9e39f249a16976918f6564b8830bc894c89659"}},
        "spec": {"volumes": [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "llm-models"}}],
                 "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3",
                                 "volumeMounts": [{"name": "model-cache", "mountPath": "/model-cache", "readOnly": True,
                                                   "subPath": "llama-3-8b/0e9e39f249a16976918f6564b8830bc894c89659"}]}]},
    }
    return pod_review(pod, namespace="llm", uid="e", dryRun=dry_run)


def asking(dry_run: bool = False, owner: dict[str, Any] | None = OWNER) -> dict[str, Any]:
    """The same replica as the ReplicaSet controller sends it to /mutate: not injected yet."""
    review = replica(dry_run, owner)
    pod = review["request"]["object"]
    del pod["metadata"]["annotations"]["model.cache/injected"]
    pod["spec"] = {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3"}]}
    return review


@pytest.fixture()
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApiServer, FlaskClient, Any]]:
    with FakeApiServer(tmp_path / "api") as fake:
        fake.add_namespace("llm")  # no PVC llm-models: every replica gets a warning
        monkeypatch.setenv("MODEL_CACHE_KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        from webhook.server.app import create_app

        app = create_app(POLICIES, events=True)
        yield fake, app.test_client(), app


def _events(fake: FakeApiServer) -> list[dict[str, Any]]:
    with fake.lock:
        return [o for (resource, ns, _), o in fake.objects.items() if resource == "events" and ns == "llm"]


def _wait_for_events(fake: FakeApiServer, n: int) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 10
    while len(_events(fake)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return _events(fake)


def test_a_replicas_warning_becomes_one_event_on_its_replicaset(cluster: tuple) -> None:
    fake, client, _ = cluster
    for _ in range(5):  # a rollout: five replicas, one Event
        status, answer = post(client, "/validate", replica())
        assert status == 200 and answer["response"]["warnings"]
    [event] = _wait_for_events(fake, 1)
    assert event["apiVersion"] == "events.k8s.io/v1" and event["type"] == "Warning"
    assert event["reason"] == "ModelCacheWarning" and event["reportingController"] == "model.cache/webhook"
    assert event["regarding"] == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "llama-vllm-5d8f7",
                                  "namespace": "llm", "uid": "1b2c"}
    assert event["note"].startswith("PVC llm-models not found in namespace llm")
    assert event["note"].endswith("(pod llama-vllm-5d8f7-*)")
    assert fake.count(r"/apis/events.k8s.io/v1/namespaces/llm/events", "POST") == 1


def test_mutate_writes_the_event_for_a_pod_that_skips_validate(cluster: tuple) -> None:
    """A ReplicaSet's pod never reaches /validate (issue 30): /mutate gives its
    warnings and writes the one Event; not for a dry run, not for a bare pod."""
    fake, client, _ = cluster
    post(client, "/mutate", asking(dry_run=True))
    post(client, "/mutate", asking(owner=None))
    for _ in range(3):
        status, answer = post(client, "/mutate", asking())
        assert status == 200 and answer["response"]["patch"]
        warnings = answer["response"]["warnings"]
        assert any(w.startswith("PVC llm-models not found in namespace llm") for w in warnings), warnings
    # One Event per warning (the PVC, the downloader's Secret), not one per replica.
    events = _wait_for_events(fake, len(warnings))
    assert sorted(e["note"] for e in events) == sorted(f"{w} (pod llama-vllm-5d8f7-*)" for w in warnings)
    assert {e["regarding"]["name"] for e in events} == {"llama-vllm-5d8f7"}
    assert fake.count(r"/events", "POST") == len(warnings)


def test_no_event_for_dry_runs_or_pods_without_a_controller(cluster: tuple) -> None:
    fake, client, _ = cluster
    post(client, "/validate", replica(dry_run=True))
    post(client, "/validate", replica(owner=None))
    # The one that counts is about another ReplicaSet: were the dry run's Event
    # queued, deduplication would not hide it behind this one. The sender is one
    # thread reading a FIFO queue: once this Event is written, any queued before it is too.
    other = {**OWNER, "name": "llama-vllm-77c9d", "uid": "9f8e"}
    post(client, "/validate", replica(owner=other))
    [event] = _wait_for_events(fake, 1)
    assert event["regarding"]["name"] == "llama-vllm-77c9d"
    assert fake.count(r"/events", "POST") == 1


def test_a_refused_event_is_logged_and_changes_no_answer(cluster: tuple, caplog: pytest.LogCaptureFixture) -> None:
    fake, client, _ = cluster
    fake.forbid(r"/events")
    status, answer = post(client, "/validate", replica())
    assert status == 200 and answer["response"]["allowed"] is True
    import time

    deadline = time.monotonic() + 10
    while "not written" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "RBAC: create events.events.k8s.io" in caplog.text


def test_event_for_cuts_long_notes_to_what_the_api_server_takes() -> None:
    event = event_for("ns", OWNER, "p", "x" * 2000, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "i")
    assert len(event["note"]) == 1024 and event["note"].endswith("...")
    assert event["eventTime"] == "2026-01-02T03:04:05.000000Z"
    assert event["metadata"]["name"].startswith("llama-vllm-5d8f7.")


def test_a_bug_in_the_checks_of_mutate_costs_the_pod_no_injection(cluster: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks /mutate runs for a pod that skips /validate are advisory, as
    /validate's are: a bug in them (our own code made to raise, not a client)
    leaves the pod injected, with a warning, not refused."""
    from webhook.admission import handlers

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(handlers, "review_pod", broken)
    _, client, _ = cluster
    status, answer = post(client, "/mutate", asking())
    assert status == 200 and answer["response"]["allowed"] is True and answer["response"]["patch"]
    assert answer["response"]["warnings"] == ["model-cache could not check this pod (webhook error; see its log)"]
