"""The pure core imports no Flask, no kubernetes client, no metrics (issue 11):
checked in a fresh interpreter, so what another test imported cannot hide it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = ["webhook.strategies", "webhook.mutate", "webhook.objects", "webhook.validate.rules", "webhook.validate.review",
        "webhook.validate.usage", "webhook.validate.facts", "webhook.admission", "webhook.admission.handlers",
        "webhook.explain", "webhook.policy", "webhook.quantity", "webhook.vocabulary"]
SHELL = ["flask", "gunicorn", "kubernetes", "prometheus_client", "urllib3", "boto3", "huggingface_hub"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_shell(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    leaked = sorted({m.split(".")[0] for m in loaded} & set(SHELL))
    assert not leaked, f"{module} pulls in {leaked}"


def test_the_downloader_command_line_starts_without_the_webhook_stack() -> None:
    code = ("import json, sys\nfrom webhook.cli import build_parser\nbuild_parser()\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not {m.split(".")[0] for m in loaded} & {"flask", "gunicorn", "kubernetes", "prometheus_client", "pydantic"}
