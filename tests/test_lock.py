"""requirements.lock, the hashed pins the image, scripts/bootstrap and CI
install from (issue 29: images that rebuild the same), agrees with
pyproject.toml, is complete, and is what the Dockerfile installs; the base
image is pinned by digest. Refresh it with scripts/lock."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, field

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

LOCK = REPO / "requirements.lock"
FIX = "run scripts/lock and commit requirements.lock"


@dataclass
class Pin:
    requirement: Requirement
    hashes: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        (spec,) = self.requirement.specifier
        return spec.version

    def applies(self, extra: str = "") -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate({**default_environment(), "extra": extra})


def pins() -> dict[str, Pin]:
    """The lock's pins by canonical name, read from pip's requirements format."""
    out: dict[str, Pin] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *hashes = re.split(r"\s+--hash=", line)
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name not in out, f"{name} pinned twice"
        out[name] = Pin(requirement, hashes)
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_every_pin_is_exact_and_hashed() -> None:
    for name, pin in pins().items():
        assert [s.operator for s in pin.requirement.specifier] == ["=="], f"{name}: not pinned with =="
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), name


def test_the_lock_matches_pyproject() -> None:
    """Every runtime dependency pyproject.toml declares is pinned, at a version it allows."""
    locked = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is declared but not in requirements.lock: {FIX}"
        version = locked[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, which pyproject.toml's {requirement} excludes: {FIX}")


def test_the_lock_is_complete_here() -> None:
    """Each pin that applies to this interpreter is what is installed, and
    everything it requires (with the extras asked for) is pinned too: pip
    install --no-deps -r requirements.lock leaves nothing out."""
    locked = pins()
    wanted: list[tuple[Requirement, str]] = [(r, "") for r in declared()]
    seen: set[tuple[str, str]] = set()
    while wanted:
        requirement, why = wanted.pop()
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} (needed by {why or 'pyproject.toml'}) is not in requirements.lock: {FIX}"
        pin = locked[name]
        assert pin.applies(), f"{name} is needed here but its marker {pin.requirement.marker} leaves it out"
        installed = importlib.metadata.version(name)
        assert installed == pin.version, f"{name} {installed} installed, {pin.version} locked: run scripts/bootstrap"
        for extra in sorted(requirement.extras) or [""]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for text in importlib.metadata.requires(name) or []:
                needed = Requirement(text)
                if needed.marker is None or needed.marker.evaluate({**default_environment(), "extra": extra}):
                    wanted.append((needed, f"{name}[{extra}]" if extra else name))


def test_the_dockerfile_installs_the_lock_on_a_base_pinned_by_digest() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert base, "the Dockerfile names its base in ARG BASE_IMAGE (scripts/node-images overrides it)"
    assert re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", base.group(1)), base.group(1)
    lock_install = dockerfile.index("pip install --require-hashes --no-deps -r requirements.lock")
    package_install = dockerfile.index("pip install --no-deps .")
    assert dockerfile.index("COPY requirements.lock") < lock_install < package_install
    assert "pip check" in dockerfile[package_install:]
    assert "!requirements.lock" in (REPO / ".dockerignore").read_text().splitlines()
    # The image's key in scripts/node-images covers the lock: a new lock rebuilds it.
    assert "requirements.lock" in (REPO / "scripts" / "node-images").read_text()
