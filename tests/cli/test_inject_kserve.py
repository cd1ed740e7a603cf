"""`inject` and `explain` on a KServe InferenceService: the predictor is a pod
spec inline, its pods' annotations at spec.predictor.annotations (and the
InferenceService's own metadata.annotations, which KServe copies too), and
`model` is the serving container kserve-container (issue 19)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import MODEL_CACHE, POLICIES

MARKER = "pvc/llama-3-8b/0e9e39f249a16976918f6564b8830bc894c89659"


def isvc(predictor: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "llama", "namespace": "llm"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": metadata,
            "spec": {"predictor": predictor}}


MODEL_PREDICTOR = {
    "minReplicas": 1,
    "annotations": {"model.cache/name": "llama-3-8b", "model.cache/containers": "kserve-container"},
    "model": {"modelFormat": {"name": "huggingface"}, "args": ["--model_dir=/model-cache"],
              "resources": {"limits": {"nvidia.com/gpu": "1"}}},
}


def run(command: str, obj: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "isvc.yaml"
    path.write_text(yaml.safe_dump(obj))
    return subprocess.run([MODEL_CACHE, command, "-f", str(path), "--policies", str(POLICIES), *args],
                          capture_output=True, text=True, timeout=60)


def test_a_model_predictor_gets_the_volumes_inline_and_the_mount_on_model(tmp_path: Path) -> None:
    result = run("inject", isvc(MODEL_PREDICTOR), tmp_path)
    assert result.returncode == 0, result.stderr
    predictor = yaml.safe_load(result.stdout)["spec"]["predictor"]
    assert predictor["annotations"] == {**MODEL_PREDICTOR["annotations"], "model.cache/injected": MARKER}
    assert predictor["model"]["modelFormat"] == {"name": "huggingface"} and predictor["minReplicas"] == 1
    assert {"name": "model-cache", "mountPath": "/model-cache", "subPath": "llama-3-8b/" + MARKER.split("/")[2],
            "readOnly": True} in predictor["model"]["volumeMounts"]
    assert {"name": "MODEL_CACHE_PATH", "value": "/model-cache"} in predictor["model"]["env"]
    assert "name" not in predictor["model"]  # KServe names it; a name here would be refused
    assert {v["name"] for v in predictor["volumes"]} >= {"model-cache", "model-cache-shm"}
    assert predictor["initContainers"][0]["name"] == "model-cache-download"
    assert "containers" not in predictor and "metadata" not in predictor and "spec" not in predictor


def test_a_custom_predictor_changes_its_containers_and_reads_the_services_own_annotations(tmp_path: Path) -> None:
    predictor = {"containers": [{"name": "kserve-container", "image": "vllm/vllm-openai:v0.6.3"}]}
    result = run("inject", isvc(predictor, annotations={"model.cache/name": "llama-3-8b"}), tmp_path)
    assert result.returncode == 0, result.stderr
    out = yaml.safe_load(result.stdout)
    assert out["metadata"]["annotations"] == {"model.cache/name": "llama-3-8b"}
    # The marker goes where KServe copies it from to the pods; the trigger stays where it was.
    assert out["spec"]["predictor"]["annotations"] == {"model.cache/injected": MARKER}
    [container] = out["spec"]["predictor"]["containers"]
    assert container["volumeMounts"][0]["name"] == "model-cache"


def test_explain_reads_the_predictor(tmp_path: Path) -> None:
    result = run("explain", isvc(MODEL_PREDICTOR), tmp_path, "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    [verdict] = json.loads(result.stdout)["verdicts"]
    assert (verdict["kind"], verdict["where"], verdict["outcome"], verdict["injected"]) == (
        "InferenceService", "spec.predictor", "injected", MARKER)
    assert "in kserve-container" in verdict["summary"]


@pytest.mark.parametrize(("predictor_annotations", "own", "hint"), [
    ({"model.cache/nmae": "llama-3-8b"}, None,
     "spec.predictor.annotations has 'model.cache/nmae': did you mean 'model.cache/name'? (edit distance 2)"),
    ({}, {"model-cache/name": "llama-3-8b"},
     "metadata.annotations has 'model-cache/name': did you mean 'model.cache/name'? (edit distance 1)"),
])
def test_a_misspelled_trigger_on_a_predictor_fails_both_commands(tmp_path: Path, predictor_annotations: dict[str, str],
                                                                 own: dict[str, str] | None, hint: str) -> None:
    obj = isvc({**MODEL_PREDICTOR, "annotations": predictor_annotations}, annotations=own)
    explained = run("explain", obj, tmp_path)
    assert explained.returncode == 1
    assert explained.stdout.splitlines() == [
        "InferenceService llm/llama (spec.predictor): not injected: no model.cache/name annotation where the "
        "webhook reads it", f"  hint: {hint}"]
    injected = run("inject", obj, tmp_path)
    assert injected.returncode == 1 and injected.stdout == ""
    assert injected.stderr == ("model-cache: InferenceService llama: not injected, no model.cache/name where the "
                               f"webhook reads it: {hint}\n")


def test_a_predictor_that_asks_for_nothing_is_not_an_error(tmp_path: Path) -> None:
    obj = isvc({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/model"}})
    explained = run("explain", obj, tmp_path)
    assert explained.returncode == 0
    assert explained.stdout.splitlines()[1] == (
        "  hint: add model.cache/name: <model> to spec.predictor.annotations or metadata.annotations to ask for a model")
    injected = run("inject", obj, tmp_path)
    assert injected.returncode == 0 and yaml.safe_load(injected.stdout) == obj
