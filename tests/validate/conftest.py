"""Fixtures of the validating half: a fake API server, the real kubernetes client
pointed at it, and a policy directory with one model per rule."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.fakes import FakeApiServer
from tests.validate.cluster import POLICY_ML, make_provider
from webhook.validate.lookups import FactsProvider
from webhook.policy import PolicyStore


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "ml.yaml").write_text(POLICY_ML)
    return d


@pytest.fixture()
def store(policies: Path) -> PolicyStore:
    return PolicyStore(policies)


@pytest.fixture()
def apiserver(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(tmp_path / "apiserver") as server:
        yield server


@pytest.fixture()
def kubeconfig(apiserver: FakeApiServer, tmp_path: Path) -> Path:
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture()
def provider(kubeconfig: Path) -> Iterator[FactsProvider]:
    p = make_provider(kubeconfig)
    yield p
    p.close()


@pytest.fixture()
def healthy_cluster(apiserver: FakeApiServer) -> FakeApiServer:
    """Namespace ml as a platform team sets it up: every check passes."""
    apiserver.add_namespace("ml")
    apiserver.add_pvc("ml", "llm-models", "100Gi")
    apiserver.add_secret("ml", "hf-token", {"HF_TOKEN": "hf_secret_value_never_logged"})
    apiserver.add_secret("ml", "s3-models", {"AWS_ACCESS_KEY_ID": "AKIA-never-logged", "AWS_SECRET_ACCESS_KEY": "s3-never-logged"})
    return apiserver
