"""`model-cache inject -f FILE`: what GitOps and CI users run before deploying."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import MODEL_CACHE
from tests.helpers import POLICIES, REPO, assert_schema_valid

TEMPLATE = textwrap.dedent("""
    metadata:
      labels: {app: srv}
      annotations: {model.cache/name: llama-3-8b}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.6.3
        resources: {limits: {nvidia.com/gpu: "1"}}
""")


def _template(indent: int) -> str:
    return textwrap.indent(TEMPLATE.strip(), " " * indent)


MANIFESTS = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dep, namespace: llm}}
spec:
  selector: {{matchLabels: {{app: srv}}}}
  template:
{_template(4)}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: sts}}
spec:
  serviceName: sts
  selector: {{matchLabels: {{app: srv}}}}
  template:
{_template(4)}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: ds}}
spec:
  selector: {{matchLabels: {{app: srv}}}}
  template:
{_template(4)}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: job}}
spec:
  template:
{_template(4)}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: cron}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
{_template(8)}
---
apiVersion: v1
kind: Service
metadata: {{name: svc}}
spec:
  ports: [{{port: 80}}]
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODEL_CACHE, "inject", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_every_workload_kind_in_multi_document_yaml(tmp_path: Path) -> None:
    src = tmp_path / "app.yaml"
    src.write_text(MANIFESTS)
    result = run("-f", str(src), "--namespace", "llm", "--policies", str(POLICIES))
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service"]
    templates = [d["spec"]["template"] for d in docs[:4]] + [docs[4]["spec"]["jobTemplate"]["spec"]["template"]]
    for t in templates:
        assert t["metadata"]["annotations"]["model.cache/injected"] == "pvc/llama-3-8b/0e9e39f249a16976918f6564b8830bc894c89659"
        assert t["spec"]["initContainers"][0]["name"] == "model-cache-download"
    assert docs[5] == yaml.safe_load(MANIFESTS.split("---")[-1])
    for d in docs:
        assert_schema_valid(d)


def test_stdin_and_the_readme_example() -> None:
    text = (REPO / "examples" / "vllm-deployment.yaml").read_text()
    result = subprocess.run([MODEL_CACHE, "inject", "-f", "-"], input=text, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    (dep,) = yaml.safe_load_all(result.stdout)
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "llm-models"


def test_denial_names_the_object_and_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "bad.yaml"
    src.write_text(MANIFESTS.replace("llama-3-8b", "llama-9", 1))
    result = run("-f", str(src), "--policies", str(POLICIES))
    assert result.returncode == 1
    assert "Deployment dep in namespace llm: denied: model \"llama-9\" is not in the model-cache policy" in result.stderr
    assert result.stdout == ""


def test_missing_file_and_bad_yaml_are_one_line_usage_errors(tmp_path: Path) -> None:
    """Exit 2, not the 1 of a finding: CI must tell a broken call from a denied pod."""
    missing = run("-f", str(tmp_path / "nope.yaml"), "--policies", str(POLICIES))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    bad = run("-f", str(tmp_path / "bad.yaml"), "--policies", str(POLICIES))
    assert bad.returncode == 2 and "is not valid YAML" in bad.stderr


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("metadata", "template_annotations", "hint"), [
    ("{name: dep, namespace: llm}", "{model.cache/nmae: llama-3-8b}",
     "spec.template.metadata.annotations has 'model.cache/nmae': did you mean 'model.cache/name'? (edit distance 2)"),
    ("{name: dep, namespace: llm}", "{model-cache/name: llama-3-8b}", "did you mean 'model.cache/name'? (edit distance 1)"),
    ("{name: dep, namespace: llm, annotations: {model.cache/name: llama-3-8b}}", "{}",
     "model.cache/name is on metadata.annotations, which never reaches the pods: "
     "move it to spec.template.metadata.annotations"),
])
def test_a_missed_trigger_is_an_error_not_silence(tmp_path: Path, metadata: str, template_annotations: str,
                                                   hint: str) -> None:
    text = textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {metadata}
        spec:
          selector: {{matchLabels: {{app: a}}}}
          template:
            metadata: {{labels: {{app: a}}, annotations: {template_annotations}}}
            spec: {{containers: [{{name: s, image: x}}]}}
        """)
    result = run("-f", _file(tmp_path, text), "--policies", str(POLICIES))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("model-cache: Deployment dep: not injected, no model.cache/name where the "
                                    "webhook reads it: ")
    assert hint in result.stderr and len(result.stderr.splitlines()) == 1


def test_every_problem_is_named_not_only_the_first(tmp_path: Path) -> None:
    src = MANIFESTS.replace("llama-3-8b", "llama-9", 1).replace("model.cache/name", "model.cache/nmae")
    result = run("-f", _file(tmp_path, src), "--policies", str(POLICIES), "-n", "llm")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["Deployment dep", "StatefulSet sts", "DaemonSet ds",
                                                              "Job job", "CronJob cron"]


def test_templates_that_ask_for_nothing_pass_unchanged(tmp_path: Path) -> None:
    src = MANIFESTS.replace("model.cache/name", "prometheus.io/scrape")
    result = run("-f", _file(tmp_path, src), "--policies", str(POLICIES))
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == list(yaml.safe_load_all(src))


def test_output_json_is_a_list_and_text_a_line_per_template(tmp_path: Path) -> None:
    src = _file(tmp_path, MANIFESTS)
    as_yaml = run("-f", src, "-n", "llm", "--policies", str(POLICIES))
    as_json = run("-f", src, "-n", "llm", "--policies", str(POLICIES), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"apiVersion": "v1", "kind": "List",
                                          "items": list(yaml.safe_load_all(as_yaml.stdout))}
    as_text = run("-f", src, "--namespace", "llm", "--policies", str(POLICIES), "--output", "text")
    marker = "pvc/llama-3-8b/0e9e39f249a16976918f6564b8830bc894c89659"
    assert as_text.stdout.splitlines() == [
        f"Deployment llm/dep (spec.template): injected {marker}",
        f"StatefulSet llm/sts (spec.template): injected {marker}",
        f"DaemonSet llm/ds (spec.template): injected {marker}",
        f"Job llm/job (spec.template): injected {marker}",
        f"CronJob llm/cron (spec.jobTemplate.spec.template): injected {marker}"]


def test_dash_n_sets_the_namespace_of_objects_that_name_none(tmp_path: Path) -> None:
    cron = MANIFESTS.split("---")[4]
    assert "kind: CronJob" in cron and "namespace" not in cron
    src = _file(tmp_path, cron)
    assert run("-f", src, "-n", "llm", "--policies", str(POLICIES)).returncode == 0
    elsewhere = run("-f", src, "-n", "nowhere", "--policies", str(POLICIES))
    assert elsewhere.returncode == 1
    assert 'CronJob cron in namespace nowhere: denied: model "llama-3-8b" is not in the model-cache policy' in elsewhere.stderr
