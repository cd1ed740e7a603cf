"""`model-cache inject -f` on YAML a person wrote: the API server's own complaint,
not a traceback (issue 9, item 7)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import MODEL_CACHE, POLICIES

DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: asr, namespace: llm}
    spec:
      selector: {matchLabels: {app: asr}}
      template:
        metadata:
          labels: {app: asr}
          annotations:
            model.cache/name: llama-3-8b
            %s
        spec:
          containers: [{name: server, image: vllm/vllm-openai:v0.6.3}]
    """)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("model.cache/preload: false", 'annotations.model.cache/preload: expected a string, got false; '
                                       'quote the value in YAML: "false"'),
        ("model.cache/shm-size: 0", 'annotations.model.cache/shm-size: expected a string, got 0; '
                                    'quote the value in YAML: "0"'),
    ],
)
def test_unquoted_annotation_values_get_the_api_servers_complaint(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(DEPLOYMENT % line)
    result = subprocess.run([MODEL_CACHE, "inject", "-f", str(path), "--policies", str(POLICIES)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"model-cache: Deployment asr: spec.template.metadata.{expected}"


def test_quoted_values_inject(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(DEPLOYMENT % 'model.cache/preload: "false"')
    result = subprocess.run([MODEL_CACHE, "inject", "-f", str(path), "--policies", str(POLICIES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "model.cache/injected: pvc/llama-3-8b/" in result.stdout
    assert "model-cache-download" not in result.stdout  # preload "false": no downloader


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    result = subprocess.run(f"{MODEL_CACHE} inject -f examples/vllm-deployment.yaml | head -1", shell=True,
                            capture_output=True, text=True, cwd=POLICIES.parent)
    assert result.stdout == "apiVersion: apps/v1\n"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
