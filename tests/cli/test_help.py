"""The command line explains itself: --version, and every option's default in --help (issue 12)."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version

import pytest

from tests.helpers import MODEL_CACHE


def test_version() -> None:
    result = subprocess.run([MODEL_CACHE, "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"model-cache {version('model-cache')}"


@pytest.mark.parametrize("command", [["serve"], ["inject"], ["explain"], ["policy", "check"], ["certs", "generate"]])
def test_every_option_has_help_and_shows_its_default(command: list[str]) -> None:
    text = subprocess.run([MODEL_CACHE, *command, "--help"], capture_output=True, text=True, check=True).stdout
    options = re.findall(r"^  (-[-\w]+|-\w, --[-\w]+)(.*)$", text, re.M)
    assert options
    blocks = re.split(r"\n  (?=-)", text)
    for block in blocks[1:]:
        name = block.split()[0]
        if name in ("-h,", "--help"):
            continue
        described = " ".join(block.split())
        assert len(described.split()) > 2, f"{command} {name} has no help"
        if "required" not in described and "store_true" not in described and "(default:" not in described:
            # flags and required options show no default; everything else must
            assert name in ("--from-cluster", "--warn-only", "-f,", "--out"), f"{command} {name}: {described}"
