"""`model-cache explain`: why a template would or would not be injected (issue 12)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import MODEL_CACHE, POLICIES
from tests.validate import pods
from webhook.explain import explain_object, near_misses
from webhook.vocabulary import edit_distance
from webhook.policy import PolicyStore



@pytest.fixture(scope="module")
def store() -> PolicyStore:
    return PolicyStore(POLICIES)


def deployment(annotations: dict[str, str] | None = None, own: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, namespace: str = "llm") -> dict:
    template = {"metadata": {"labels": {"app": "server", **(labels or {})}, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3",
                                         "resources": {"limits": {"memory": "32Gi", "nvidia.com/gpu": "1"}}}]}}
    return pods.deployment(template, "server", namespace=namespace, annotations=own or {})


def test_edit_distance() -> None:
    assert edit_distance("model.cache/name", "model.cache/name") == 0
    assert edit_distance("model.cache/nmae", "model.cache/name") == 2
    assert edit_distance("model-cache/name", "model.cache/name") == 1
    assert edit_distance("", "abc") == 3


def test_near_misses_find_typos_not_strangers() -> None:
    found = {k: (ours, d) for k, ours, d in near_misses(
        ["model.cache/nmae", "model-cache/name", "model.cache/mountpath", "prometheus.io/scrape", "app",
         "model.cache/name"])}
    assert found == {"model.cache/nmae": ("model.cache/name", 2), "model-cache/name": ("model.cache/name", 1),
                     "model.cache/mountpath": ("model.cache/mount-path", 1)}


@pytest.mark.parametrize(
    ("obj", "outcome", "needle"),
    [
        (deployment({"model.cache/nmae": "llama-3-8b"}), "missed",
         "'model.cache/nmae': did you mean 'model.cache/name'? (edit distance 2)"),
        (deployment({"model-cache/name": "llama-3-8b"}), "missed", "did you mean 'model.cache/name'"),
        (deployment(own={"model.cache/name": "llama-3-8b"}), "missed",
         "model.cache/name is on metadata.annotations, which never reaches the pods: "
         "move it to spec.template.metadata.annotations"),
        (deployment(own={"model.cache/nmae": "llama-3-8b"}), "missed",
         "metadata.annotations has 'model.cache/nmae' (like 'model.cache/name', edit distance 2), which never "
         "reaches the pods"),
        (deployment(labels={"model.cache/name": "llama-3-8b"}), "missed", "must be an annotation, not a label"),
        (deployment(), "not-asked", "add model.cache/name: <model> to spec.template.metadata.annotations"),
        (deployment({"model.cache/name": "llama-3-70b"}), "denied",
         'its pods would be denied: model "llama-3-70b" is not in the model-cache policy for namespace llm'),
        (deployment({"model.cache/name": "llama-3-8b"}, namespace="nowhere"), "denied",
         "not in the model-cache policy for namespace nowhere"),
        (deployment({"model.cache/name": "llama-3-8b", "model.cache/strategy": "image"}), "denied",
         'strategy "image"'),
        (deployment({"model.cache/name": "llama-3-8b"}), "injected", "injected: model llama-3-8b"),
    ],
)
def test_each_reason_is_named(store: PolicyStore, obj: dict, outcome: str, needle: str) -> None:
    [verdict] = explain_object(obj, None, store)
    assert verdict.outcome == outcome
    assert verdict.failed == (outcome in ("missed", "denied", "invalid"))
    assert needle in " ".join([verdict.summary, *verdict.hints]), verdict


def test_injected_templates_carry_the_validating_warnings(store: PolicyStore) -> None:
    obj = deployment({"model.cache/name": "phi-2"})
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    [verdict] = explain_object(obj, None, store)
    assert verdict.outcome == "injected" and "strategy memory" in verdict.summary
    assert [w.split(":")[0] for w in verdict.warnings] == [
        "model phi-2 (6Gi) uses strategy memory", "model phi-2 keeps 6Gi in memory but container vllm has no memory limit"]


def explain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODEL_CACHE, "explain", *args, "--policies", str(POLICIES)], capture_output=True,
                          text=True, timeout=60)


def test_the_command_prints_a_verdict_per_template_and_exits_1_on_a_denial(tmp_path: Path) -> None:
    file = tmp_path / "apps.yaml"
    file.write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: ok, namespace: llm}
        spec:
          selector: {matchLabels: {app: a}}
          template:
            metadata: {labels: {app: a}, annotations: {model.cache/name: llama-3-8b}}
            spec: {containers: [{name: s, image: x}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: p, namespace: llm, annotations: {model.cache/name: nope}}
        spec: {containers: [{name: s, image: x}]}
        """))
    result = explain("-f", str(file))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Deployment llm/ok (spec.template): injected: model llama-3-8b")
    assert lines[-1].startswith('Pod llm/p: it would be denied: model "nope" is not in the model-cache policy')
    ok = explain("-f", str(POLICIES.parent / "examples/vllm-deployment.yaml"))
    assert ok.returncode == 0 and "strategy pvc, mounted read-only at /model-cache in vllm" in ok.stdout


TYPO_DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: typo, namespace: llm}
    spec:
      selector: {matchLabels: {app: a}}
      template:
        metadata: {labels: {app: a}, annotations: {%s: llama-3-8b}}
        spec: {containers: [{name: s, image: x}]}
    """)


@pytest.mark.parametrize("key", ["model.cache/nmae", "model-cache/name"])
def test_a_misspelled_trigger_exits_1_with_the_fix(tmp_path: Path, key: str) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text(TYPO_DEPLOYMENT % key)
    result = explain("-f", str(file))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == [
        "Deployment llm/typo (spec.template): not injected: no model.cache/name annotation where the webhook reads it",
        f"  hint: spec.template.metadata.annotations has '{key}': did you mean 'model.cache/name'? "
        f"(edit distance {edit_distance(key, 'model.cache/name')})"]


def test_the_annotation_on_the_deployments_own_metadata_exits_1(tmp_path: Path) -> None:
    obj = deployment(own={"model.cache/name": "llama-3-8b"})
    file = tmp_path / "own.yaml"
    file.write_text(yaml.safe_dump(obj))
    result = explain("-f", str(file))
    assert result.returncode == 1
    assert "  hint: model.cache/name is on metadata.annotations, which never reaches the pods: move it to " \
           "spec.template.metadata.annotations" in result.stdout.splitlines()


def test_an_unknown_model_exits_1(tmp_path: Path) -> None:
    file = tmp_path / "unknown.yaml"
    file.write_text(TYPO_DEPLOYMENT.replace("llama-3-8b", "llama-9") % "model.cache/name")
    result = explain("-f", str(file))
    assert result.returncode == 1
    assert 'its pods would be denied: model "llama-9" is not in the model-cache policy' in result.stdout


def test_templates_that_ask_for_nothing_exit_0(tmp_path: Path) -> None:
    file = tmp_path / "plain.yaml"
    file.write_text(TYPO_DEPLOYMENT % "prometheus.io/scrape" + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    result = explain("-f", str(file))
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("Deployment llm/typo (spec.template): not injected: no model.cache/name "
                                    "annotation on the pod template\n")


def test_a_file_without_pods_names_the_kinds_it_reads(tmp_path: Path) -> None:
    file = tmp_path / "svc.yaml"
    file.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    result = explain("-f", str(file))
    assert result.returncode == 0
    assert result.stdout == (f"{file}: no Pod or pod template (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, "
                             "Job, CronJob, InferenceService)\n")


WORKLOADS = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: sts}
    spec:
      serviceName: sts
      selector: {matchLabels: {app: a}}
      template:
        metadata: {labels: {app: a}, annotations: {model.cache/name: llama-3-8b}}
        spec: {containers: [{name: s, image: x}]}
    ---
    apiVersion: batch/v1
    kind: Job
    metadata: {name: job}
    spec:
      template:
        metadata: {annotations: {model.cache/name: llama-3-8b}}
        spec: {restartPolicy: Never, containers: [{name: s, image: x}]}
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: cron}
    spec:
      schedule: "0 3 * * *"
      jobTemplate:
        metadata: {annotations: {model.cache/name: llama-3-8b}}
        spec:
          template:
            metadata: {annotations: {model.cache/nmae: llama-3-8b}}
            spec: {restartPolicy: Never, containers: [{name: s, image: x}]}
    """)


def test_statefulsets_jobs_and_cronjobs(tmp_path: Path) -> None:
    file = tmp_path / "workloads.yaml"
    file.write_text(WORKLOADS)
    result = explain("-f", str(file), "-n", "llm", "-o", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [(v["kind"], v["namespace"], v["where"], v["outcome"]) for v in report["verdicts"]] == [
        ("StatefulSet", "llm", "spec.template", "injected"),
        ("Job", "llm", "spec.template", "injected"),
        ("CronJob", "llm", "spec.jobTemplate.spec.template", "missed")]
    cron = report["verdicts"][2]
    assert cron["hints"] == [
        "spec.jobTemplate.spec.template.metadata.annotations has 'model.cache/nmae': did you mean "
        "'model.cache/name'? (edit distance 2)",
        "model.cache/name is on spec.jobTemplate.metadata.annotations, which never reaches the pods: move it to "
        "spec.jobTemplate.spec.template.metadata.annotations"]


def test_the_json_shape(tmp_path: Path) -> None:
    """The shape docs/cli.md documents: every key, every type."""
    file = tmp_path / "typo.yaml"
    file.write_text(TYPO_DEPLOYMENT % "model.cache/name" + "---\n" + (TYPO_DEPLOYMENT % "model.cache/nmae").replace(
        "name: typo", "name: typo2"))
    result = explain("-f", str(file), "--output", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report == {"ok": False, "verdicts": [
        {"kind": "Deployment", "namespace": "llm", "name": "typo", "where": "spec.template", "outcome": "injected",
         "summary": report["verdicts"][0]["summary"], "hints": [], "warnings": [],
         "injected": "pvc/llama-3-8b/0e9e39f249a16976918f6564b8830bc894c89659", "failed": False},
        {"kind": "Deployment", "namespace": "llm", "name": "typo2", "where": "spec.template", "outcome": "missed",
         "summary": "not injected: no model.cache/name annotation where the webhook reads it",
         "hints": ["spec.template.metadata.annotations has 'model.cache/nmae': did you mean 'model.cache/name'? "
                   "(edit distance 2)"], "warnings": [], "injected": None, "failed": True}]}
    assert report["verdicts"][0]["summary"].startswith("injected: model llama-3-8b")
    as_yaml = explain("-f", str(file), "-o", "yaml")
    assert as_yaml.returncode == 1 and yaml.safe_load(as_yaml.stdout) == report
    assert as_yaml.stdout.startswith("ok: false\nverdicts:\n- kind: Deployment\n")  # YAML, not JSON


def test_namespace_option_for_objects_that_name_none(tmp_path: Path) -> None:
    file = tmp_path / "pod.yaml"
    file.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {model.cache/name: llama-3-8b}}\n"
                    "spec: {containers: [{name: s, image: x}]}\n")
    assert explain("-f", str(file), "-n", "llm").stdout.startswith("Pod llm/p: injected: model llama-3-8b")
    assert explain("-f", str(file), "--namespace", "llm").returncode == 0
    elsewhere = explain("-f", str(file), "-n", "nowhere")
    assert elsewhere.returncode == 1 and "Pod nowhere/p: it would be denied" in elsewhere.stdout


def test_only_a_hub_model_is_said_to_have_a_revision(store: PolicyStore) -> None:
    """An s3 model has no revision: "revision main" (its cache directory's name) would mislead."""
    s3 = explain_object(deployment({"model.cache/name": "phi-2"}), None, store)[0]
    hub = explain_object(deployment({"model.cache/name": "llama-3-8b"}), None, store)[0]
    assert s3.outcome == hub.outcome == "injected"
    assert "injected: model phi-2 (6Gi) from" in s3.summary and "revision" not in s3.summary
    assert "injected: model llama-3-8b (revision 0e9e39f2" in hub.summary
