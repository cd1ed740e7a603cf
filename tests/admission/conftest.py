from __future__ import annotations

from typing import Iterator

import pytest
from flask.testing import FlaskClient

from tests.helpers import POLICIES


@pytest.fixture()
def app_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    """The real Flask app on the example policies, in this process (no TLS, no gunicorn)."""
    monkeypatch.setenv("MODEL_CACHE_CLUSTER_CHECKS", "off")
    from webhook.server.app import create_app

    # No `with`: two clients (enforcing and warn-only) may live in one test.
    yield create_app(POLICIES).test_client()
