"""Helpers of the downloader's tests: run the installed `model-cache download`
as a user does, and read what it left. Fixtures stay in conftest.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import MODEL_CACHE, REPO


def download_cmd(source: str, dest: Path, *extra: str) -> list[str]:
    return [MODEL_CACHE, "download", "--source", source, "--dest", str(dest), *extra]


def run_download(env: dict[str, str], source: str, dest: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(download_cmd(source, dest, *extra), env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def start_download(env: dict[str, str], source: str, dest: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(download_cmd(source, dest, *extra), env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root, with its bytes (test data is small)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def model_files(root: Path) -> dict[str, bytes]:
    """The model's files, without our marker."""
    return {k: v for k, v in tree(root).items() if k != ".model-cache.json"}
