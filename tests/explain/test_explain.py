"""`model-cache explain`: why a template would or would not be injected (issue 12)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import MODEL_CACHE, POLICIES
from tests.validate import pods
from webhook.explain import edit_distance, explain_object, near_misses
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
        (deployment({"model.cache/nmae": "llama-3-8b"}), "not-injected",
         "'model.cache/nmae': did you mean 'model.cache/name'? (edit distance 2)"),
        (deployment({"model-cache/name": "llama-3-8b"}), "not-injected", "did you mean 'model.cache/name'"),
        (deployment(own={"model.cache/name": "llama-3-8b"}), "not-injected",
         "is on the Deployment's own metadata; the webhook reads the pod's: move it to spec.template.metadata"),
        (deployment(labels={"model.cache/name": "llama-3-8b"}), "not-injected", "must be an annotation, not a label"),
        (deployment(), "not-injected", "add model.cache/name: <model> to spec.template.metadata.annotations"),
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
    assert needle in " ".join([verdict.summary, *verdict.hints]), verdict


def test_injected_templates_carry_the_validating_warnings(store: PolicyStore) -> None:
    obj = deployment({"model.cache/name": "phi-2"})
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    [verdict] = explain_object(obj, None, store)
    assert verdict.outcome == "injected" and "strategy memory" in verdict.summary
    assert [w.split(":")[0] for w in verdict.warnings] == [
        "model phi-2 (6Gi) uses strategy memory", "model phi-2 keeps 6Gi in memory but container vllm has no memory limit"]


def test_the_command_prints_a_verdict_per_template_and_exits_1_on_a_denial(tmp_path: Path) -> None:
    file = tmp_path / "apps.yaml"
    file.write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: typo, namespace: llm}
        spec:
          selector: {matchLabels: {app: a}}
          template:
            metadata: {labels: {app: a}, annotations: {model.cache/nmae: llama-3-8b}}
            spec: {containers: [{name: s, image: x}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: p, namespace: llm, annotations: {model.cache/name: nope}}
        spec: {containers: [{name: s, image: x}]}
        """))
    result = subprocess.run([MODEL_CACHE, "explain", "-f", str(file), "--policies", str(POLICIES)],
                            capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Deployment llm/typo (spec.template): not injected: no model.cache/name annotation on the pod template"
    assert lines[1].startswith("  hint: spec.template.metadata.annotations has 'model.cache/nmae'")
    assert lines[2].startswith('Pod llm/p: it would be denied: model "nope" is not in the model-cache policy')
    ok = subprocess.run([MODEL_CACHE, "explain", "-f", str(POLICIES.parent / "examples/vllm-deployment.yaml"),
                         "--policies", str(POLICIES)], capture_output=True, text=True)
    assert ok.returncode == 0 and "strategy pvc, mounted read-only at /model-cache in vllm" in ok.stdout
