from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.download.origin import Origin
from tests.download.s3front import S3Front
from tests.helpers import free_port


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


@pytest.fixture
def s3_plain(moto_url: str):
    """A client that adds no checksum of its own to uploads (botocore adds a
    CRC32 by default): objects whose only digest is their ETag."""
    import boto3
    import botocore.config

    return boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1",
                        config=botocore.config.Config(request_checksum_calculation="when_required"))


@pytest.fixture
def s3front(moto_url: str) -> Iterator[S3Front]:
    """A misbehaving S3 endpoint in front of moto (tests/download/s3front.py)."""
    front = S3Front(moto_url).start()
    yield front
    front.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Mounts a tmpfs of exactly N bytes (rounded up to pages) per call: a
    volume of a given size, as a memory emptyDir's sizeLimit makes one (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        mnt = tmp_path / f"tmpfs-{len(mounted)}"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def termination_log(tmp_path: Path, dl_env: dict[str, str]) -> Path:
    """A termination log the downloader writes to, as the kubelet provides one."""
    log = tmp_path / "termination-log"
    log.write_text("")
    dl_env["MODEL_CACHE_TERMINATION_LOG"] = str(log)
    return log


@pytest.fixture
def faulty_fs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mounts tests/download/faultyfs.py (FUSE) per call: a volume whose
    write, fsync or fallocate fails on demand. Needs /dev/fuse and fusermount3."""
    import shutil
    import sys
    import time

    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        pytest.skip("FUSE is not available (apt-get install fuse3)")
    started: list[tuple[subprocess.Popen, Path]] = []

    def mount(fail: str, after: int, err: str, only: str) -> Path:
        backing, mnt = tmp_path / f"backing-{len(started)}", tmp_path / f"fuse-{len(started)}"
        backing.mkdir()
        mnt.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "tests.download.faultyfs", str(backing), str(mnt),
                                 "--fail", fail, "--after", str(after), "--errno", err, "--only", only],
                                cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, text=True)
        started.append((proc, mnt))
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                pytest.skip(f"cannot mount a FUSE file system here: {proc.stderr.read().strip()[-300:]}")
            assert time.monotonic() < deadline, "the FUSE file system did not mount"
            time.sleep(0.05)
        return mnt

    yield mount
    for proc, mnt in started:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False, capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
