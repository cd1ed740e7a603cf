"""The review endpoints' own WSGI path (webhook.server.app.ReviewRoutes): a
POST to /mutate or /validate is answered without Flask's request machinery,
everything else is still Flask's."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from flask import Flask, request_started

from tests.helpers import POLICIES, golden_pod, pod_review, post
from webhook.server.app import create_app


@pytest.fixture()
def app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return create_app(POLICIES)


@pytest.fixture()
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """The paths of the requests Flask dispatched."""
    seen: list[str] = []

    def started(sender: Flask, **extra: Any) -> None:
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    try:
        yield seen
    finally:
        request_started.disconnect(started, app)


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_a_review_is_answered_without_flask(app: Flask, flask_requests: list[str], path: str) -> None:
    status, answer = post(app.test_client(), path, pod_review(golden_pod("vllm-gpu-pvc")))
    assert status == 200 and answer["response"]["allowed"] is True
    assert flask_requests == []


def test_a_malformed_review_gets_its_status_and_a_review(app: Flask) -> None:
    response = app.test_client().post("/mutate", data=b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.data)
    assert response.get_json()["response"]["allowed"] is False


def test_everything_else_is_flasks(app: Flask, flask_requests: list[str]) -> None:
    client = app.test_client()
    assert client.get("/mutate").status_code == 405
    assert client.get("/healthz").status_code == 200
    assert flask_requests == ["/mutate", "/healthz"]
