"""The release: the workflow that builds and pushes the multi-arch image and
the chart on a tag, the image's Dockerfile (one program for the webhook and
the downloader), and the LICENSE the package declares. No Docker engine
here: what can be checked without one is."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import REPO, binary
from tests.helpers import cannot_run

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps(job: str) -> list[dict[str, Any]]:
    return workflow()["jobs"][job]["steps"]


def uses(job: str, action: str) -> dict[str, Any]:
    found = [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]
    assert len(found) == 1, f"{job}: {action} used {len(found)} times"
    return found[0]


def test_actionlint() -> None:
    exe = binary("actionlint")
    if exe is None:
        cannot_run("no actionlint: run scripts/helm-bin (needs Go)")
    proc = subprocess.run([exe, str(WORKFLOW)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runs_on_a_version_tag_only() -> None:
    on = workflow()["on"]
    assert set(on) == {"push"} and set(on["push"]) == {"tags"}
    assert all(re.fullmatch(r"v[\d*.]+", t) for t in on["push"]["tags"])
    check = next(s for s in steps("test") if s.get("id") == "version")["run"]
    assert "pyproject.toml" in check and "GITHUB_REF_NAME" in check and "Chart.yaml" in check


def test_builds_and_pushes_a_multi_arch_image_after_the_tests() -> None:
    job = workflow()["jobs"]["image"]
    assert job["needs"] == "test"
    assert job["permissions"]["packages"] == "write"
    assert workflow()["permissions"] == {"contents": "read"}  # only the pushing jobs may write packages
    uses("image", "docker/setup-qemu-action")
    uses("image", "docker/setup-buildx-action")
    assert uses("image", "docker/login-action")["with"]["registry"] == "ghcr.io"
    order = [s.get("uses", "").split("@")[0] for s in steps("image")]
    assert order.index("docker/setup-qemu-action") < order.index("docker/build-push-action")
    build = uses("image", "docker/build-push-action")["with"]
    assert {"linux/amd64", "linux/arm64"} <= set(build["platforms"].split(","))
    assert build["push"] is True and build["context"] == "."
    assert "VERSION=" in build["build-args"]
    meta = uses("image", "docker/metadata-action")["with"]
    # ghcr.io/model-cache/model-cache:0.1.0 is what the manifests and the chart name.
    assert meta["images"] == "ghcr.io/${{ github.repository }}"
    assert "type=semver,pattern={{version}}" in meta["tags"]
    values = yaml.safe_load((REPO / "charts" / "model-cache" / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/model-cache/model-cache"


def test_pushes_the_chart() -> None:
    run = "\n".join(s.get("run", "") for s in steps("chart"))
    assert "helm package charts/model-cache" in run and "helm push" in run and "oci://ghcr.io/" in run


def test_license_is_the_apache_license_the_package_declares() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text and "http://www.apache.org/licenses/" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    assert len(text.splitlines()) >= 200  # the full text, not a notice
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    assert yaml.safe_load((REPO / "charts" / "model-cache" / "Chart.yaml").read_text())["license"] == "Apache-2.0"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in dockerfile
    assert re.search(r"^COPY LICENSE ", dockerfile, re.M)
    assert "!LICENSE" in (REPO / ".dockerignore").read_text().splitlines()


def test_one_program_is_the_webhook_and_the_downloader(tmp_path: Path) -> None:
    """The image's ENTRYPOINT is the package's `model-cache`; the Deployment
    runs it with `serve`, the injected init container with `download`."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["model-cache"\]$', dockerfile, re.M)
    assert re.search(r"^ENV PATH=/opt/model-cache/bin:", dockerfile, re.M)  # the init container's command
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "model-cache" in scripts
    for sub in ("serve", "download"):
        proc = subprocess.run([MODEL_CACHE, sub, "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "llm",
           "annotations": {"model.cache/name": "llama-3-8b"}},
           "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.0"}]}}
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    out = subprocess.run([MODEL_CACHE, "inject", "-f", str(tmp_path / "pod.yaml"), "--policies", str(REPO / "policies")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (init,) = yaml.safe_load(out.stdout)["spec"]["initContainers"]
    assert init["command"] == ["model-cache"] and init["args"][0] == "download"
    assert init["image"] == f"ghcr.io/model-cache/model-cache:{VERSION}"
    assert init["securityContext"]["runAsUser"] == 10001  # the image's user (USER 10001)


def test_every_third_party_import_is_declared() -> None:
    """The image installs the package's declared dependencies; a module that
    imports a package only some other dependency brings breaks when that
    dependency drops it (huggingface_hub moved from requests to httpx2)."""
    import ast
    import importlib.metadata

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {Requirement(r).name.lower().replace("_", "-") for r in project["dependencies"]}
    dists = importlib.metadata.packages_distributions()
    missing: dict[str, set[str]] = {}
    for path in (REPO / "webhook").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"webhook"}:
                owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
                if not owners & declared:
                    missing.setdefault(top, set()).add(str(path.relative_to(REPO)))
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"


def test_builds_the_wheel_and_sdist_and_pipx_installs_the_wheel() -> None:
    """The command line on its own (issue 29): the tag's version (checked equal
    to pyproject.toml's by the test job), built after the tests, smoke-tested
    through pipx outside the checkout, attached to the release, published."""
    job = workflow()["jobs"]["python"]
    assert job["needs"] == "test" and job["env"]["VERSION"] == "${{ needs.test.outputs.version }}"
    assert job["permissions"] == {"contents": "write", "id-token": "write"}
    run = "\n".join(s.get("run", "") for s in steps("python"))
    assert "python -m build --outdir dist" in run
    assert 'model_cache-$VERSION.tar.gz' in run and 'model_cache-$VERSION-py3-none-any.whl' in run
    assert 'pipx install "dist/model_cache-$VERSION-py3-none-any.whl"' in run
    assert 'cd "$RUNNER_TEMP"' in run and "model-cache explain -f" in run
    assert "gh release upload" in run
    uses("python", "pypa/gh-action-pypi-publish")
    install = (REPO / "docs" / "install.md").read_text()
    assert "pipx install model-cache" in install and "MODEL_CACHE_POLICIES" in install
