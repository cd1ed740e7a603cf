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


# Options with no value of their own: flags that are off, required ones, and one
# whose absence is the setting ("off when absent").
NO_DEFAULT = ("--from-cluster", "--warn-only", "-f", "--out", "--tls-secret", "-R,", "--strict")


@pytest.mark.parametrize("command", [["serve"], ["inject"], ["explain"], ["policy", "check"], ["certs", "generate"]])
def test_every_option_has_help_and_gives_its_default_once(command: list[str]) -> None:
    text = subprocess.run([MODEL_CACHE, *command, "--help"], capture_output=True, text=True, check=True).stdout
    blocks = re.split(r"\n  (?=-)", text.split("\noptions:", 1)[1])
    assert len(blocks) > 1
    for block in blocks[1:]:
        name = block.split()[0]
        if name in ("-h,", "--help"):
            continue
        described = " ".join(block.split())
        assert len(described.split()) > 2, f"{command} {name} has no help"
        # "(default: X)", or a default the help states itself ("default: ...").
        defaults = len(re.findall(r"\(default\b|(?<!\()\bdefault:", described, re.I))
        if name in NO_DEFAULT:
            assert defaults == 0, f"{command} {name}: {described}"
        else:
            assert defaults == 1, f"{command} {name}: {described}"
        assert "(default: None)" not in described
