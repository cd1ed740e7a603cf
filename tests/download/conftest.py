from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.download.origin import Origin
from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin().start()
    yield o
    o.stop()


@pytest.fixture
def dl_env(tmp_path: Path) -> dict[str, str]:
    """The downloader's environment: no real credentials, short timings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "HF_", "MODEL_CACHE_", "POD_", "NODE_"))}
    env.update({
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MODEL_CACHE_RETRY_BACKOFF": "0.05",
        "MODEL_CACHE_RETRIES": "3",
        "MODEL_CACHE_HEARTBEAT_SECONDS": "0.3",
        "MODEL_CACHE_STALE_SECONDS": "3",
        "MODEL_CACHE_PROGRESS_SECONDS": "0.5",
        "MODEL_CACHE_POLL_SECONDS": "0.1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


# The installed command line (the console script beside this interpreter), so
# that the tests do not depend on where the CLI module lives.
MODEL_CACHE = [str(Path(sys.executable).with_name("model-cache"))]


def download_cmd(source: str, dest: Path, *extra: str) -> list[str]:
    return [*MODEL_CACHE, "download", "--source", source, "--dest", str(dest), *extra]


def run_download(env: dict[str, str], source: str, dest: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(download_cmd(source, dest, *extra), env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)


def start_download(env: dict[str, str], source: str, dest: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(download_cmd(source, dest, *extra), env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root, with its bytes (test data is small)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def model_files(root: Path) -> dict[str, bytes]:
    """The model's files, without our marker."""
    return {k: v for k, v in tree(root).items() if k != ".model-cache.json"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's S3 server on loopback, reached by the real boto3."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(dl_env, moto_url: str) -> dict[str, str]:
    return dict(dl_env, AWS_ENDPOINT_URL=moto_url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")


@pytest.fixture
def s3(moto_url: str):
    import boto3

    return boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1")
