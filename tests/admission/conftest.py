from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from flask.testing import FlaskClient

from tests.helpers import POLICIES, golden_cases, golden_pod


def golden_pods() -> list[dict[str, Any]]:
    """The realistic pods of tests/golden/, as the API server sends them."""
    return [golden_pod(case) for case in golden_cases()]


@pytest.fixture()
def app_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    """The real Flask app on the example policies, in this process (no TLS, no gunicorn)."""
    monkeypatch.setenv("MODEL_CACHE_CLUSTER_CHECKS", "off")
    from webhook.server.app import create_app

    # No `with`: two clients (enforcing and warn-only) may live in one test.
    yield create_app(POLICIES).test_client()


def post(client: FlaskClient, path: str, body: bytes | Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, data=data, content_type="application/json")
    return response.status_code, json.loads(response.data)
