"""What the admission tests share beyond fixtures: the golden pods, and a
review posted to the in-process app."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from tests.helpers import golden_cases, golden_pod


def golden_pods() -> list[dict[str, Any]]:
    """The realistic pods of tests/golden/, as the API server sends them."""
    return [golden_pod(case) for case in golden_cases()]


def post(client: FlaskClient, path: str, body: bytes | Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, data=data, content_type="application/json")
    return response.status_code, json.loads(response.data)
