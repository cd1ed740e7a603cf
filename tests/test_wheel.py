"""The command line on its own (issue 29): the wheel and sdist the release
workflow builds hold the whole program, and the wheel installed into a fresh
virtualenv, run from outside any checkout, gives a working `model-cache
explain`, as `pipx install` would. Built offline (python -m build
--no-isolation); the fresh venv borrows the dependencies of .venv through a
path entry (no index to install them from here) but gets model-cache itself,
its modules and its entry point, only from the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.helpers import POLICIES, REPO

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def source_copy(into: Path) -> Path:
    """The checkout's files (tracked, or new and not ignored) copied to INTO.
    Built in place, setuptools makes its sdist tree, egg-info and build/ in
    the checkout itself, so two workers each building it (this module's
    tests may land on both) removed each other's files mid-build."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, into / name)
    return into


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = source_copy(tmp_path_factory.mktemp("source"))
    # No --sdist/--wheel: the sdist, then the wheel from it, as the release
    # builds them; so a stale build/ cannot slip into the wheel.
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def package_modules() -> set[str]:
    return {str(p.relative_to(REPO)) for p in (REPO / "webhook").rglob("*.py")}


def test_the_wheel_and_sdist_hold_every_module(dist: Path) -> None:
    (wheel,) = dist.glob(f"model_cache-{VERSION}-py3-none-any.whl")
    (sdist,) = dist.glob(f"model_cache-{VERSION}.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"model_cache-{VERSION}.dist-info/entry_points.txt").decode()
    assert package_modules() <= names
    assert "model-cache = webhook.cli:main" in entry_points
    with tarfile.open(sdist) as tf:
        inside = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert package_modules() | {"pyproject.toml", "README.md", "LICENSE"} <= inside
    assert not [n for n in inside if n.startswith("tests/")], "the sdist ships no tests (MANIFEST.in prunes them)"


def test_the_wheel_in_a_fresh_venv_explains_outside_a_checkout(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    # The dependencies, after the wheel's own site-packages on the path (a .pth
    # line adds a directory without running the editable install's hooks in it).
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import webhook; print(webhook.__file__)"], capture_output=True,
                           text=True, check=True, cwd=elsewhere).stdout.strip()
    assert Path(where).is_relative_to(site), where
    model_cache = str(fresh / "bin" / "model-cache")
    version = subprocess.run([model_cache, "--version"], capture_output=True, text=True, cwd=elsewhere, timeout=60)
    assert version.stdout.strip() == f"model-cache {VERSION}"
    example = str(REPO / "examples" / "vllm-deployment.yaml")
    explained = subprocess.run([model_cache, "explain", "-f", example], capture_output=True, text=True,
                               cwd=elsewhere, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                                "MODEL_CACHE_POLICIES": str(POLICIES)})
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith("Deployment llm/llama-vllm (spec.template): injected: model llama-3-8b")
