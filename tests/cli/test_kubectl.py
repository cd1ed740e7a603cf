"""kubectl's conventions in `inject` and `explain` (issue 29): --kubeconfig,
--context, the context's namespace, -f directories, repeated -f and -f -,
the namespace mismatch refused, and exit codes that tell a finding (1) from
a usage error (2) from a runtime failure (3). Through the real kubernetes
client against the fake API server, and a port nothing listens on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes import FakeApiServer
from tests.helpers import MODEL_CACHE, POLICIES, REPO

CLUSTER_POLICY = """\
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults:
  pvc: {claimName: cluster-models}
models:
  llama-3-8b:
    source: hf://meta-llama/Llama-3.1-8B-Instruct
    revision: cafe0000
    size: 16Gi
"""


def deployment(name: str, namespace: str | None = None, model: str = "llama-3-8b") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}, "annotations": {"model.cache/name": model}},
                                  "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.6.3"}]}}}}


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """No kubeconfig but the one a test names: not the machine's, not a pod's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "MODEL_CACHE_KUBECONFIG", "KUBERNETES_SERVICE_HOST", "MODEL_CACHE_POLICIES")}
    return {**env, "HOME": str(home), **extra}


def run(args: list[str], env: dict[str, str], stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODEL_CACHE, *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=60, cwd=cwd)


def subjects(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode in (0, 1), result.stderr
    return [f"{v['kind']} {v['namespace']}/{v['name']}" for v in json.loads(result.stdout)["verdicts"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_context_kubeconfig(path: Path, fake: FakeApiServer, current: str = "dead") -> Path:
    """`live` talks to FAKE with namespace llm; `dead` to a loopback port nobody listens on, namespace speech."""
    fake.write_kubeconfig(path)
    config = yaml.safe_load(path.read_text())
    live_cluster = config["clusters"][0]
    config["clusters"] = [{"name": "live", "cluster": live_cluster["cluster"]},
                          {"name": "dead", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                       "insecure-skip-tls-verify": True}}]
    user = config["users"][0]["name"]
    config["contexts"] = [{"name": "live", "context": {"cluster": "live", "user": user, "namespace": "llm"}},
                          {"name": "dead", "context": {"cluster": "dead", "user": user, "namespace": "speech"}}]
    config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FakeApiServer(tmp_path / "api") as fake:
        fake.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "model-cache-policies", "labels": {"model.cache/policy": "true"}},
                                "data": {"llm.yaml": CLUSTER_POLICY}}, "model-cache")
        yield fake, two_context_kubeconfig(tmp_path / "kubeconfig", fake)


def test_context_picks_the_cluster_and_its_namespace(tmp_path: Path, cluster) -> None:  # type: ignore[no-untyped-def]
    fake, kubeconfig = cluster
    src = tmp_path / "dep.yaml"
    src.write_text(yaml.safe_dump(deployment("vllm")))
    env = clean_env(tmp_path)
    live = run(["explain", "-f", str(src), "--from-cluster", "--kubeconfig", str(kubeconfig), "--context", "live",
                "-o", "json"], env)
    assert live.returncode == 0, live.stderr
    verdict = json.loads(live.stdout)["verdicts"][0]
    # The live context's namespace (llm) and the cluster's policy (revision cafe0000).
    assert verdict["namespace"] == "llm" and verdict["injected"] == "pvc/llama-3-8b/cafe0000"
    assert fake.count(r"/api/v1/namespaces/model-cache/configmaps/model-cache-policies", "GET") == 1

    # The current context (dead) answers nothing: a runtime failure, exit 3, not a finding.
    dead = run(["explain", "-f", str(src), "--from-cluster", "--kubeconfig", str(kubeconfig)], env)
    assert dead.returncode == 3, dead.stdout + dead.stderr
    assert dead.stderr.startswith("model-cache: reading ConfigMap model-cache/model-cache-policies: no answer")

    unknown = run(["explain", "-f", str(src), "--from-cluster", "--kubeconfig", str(kubeconfig),
                   "--context", "prod"], env)
    assert unknown.returncode == 2 and "--context prod: no such context" in unknown.stderr
    assert "its contexts: live, dead" in unknown.stderr


def test_without_n_the_contexts_namespace_then_default(tmp_path: Path, cluster) -> None:  # type: ignore[no-untyped-def]
    _, kubeconfig = cluster
    src = tmp_path / "dep.yaml"
    src.write_text(yaml.safe_dump(deployment("vllm")))
    base = ["explain", "-f", str(src), "--policies", str(POLICIES), "-o", "json"]
    # KUBECONFIG as kubectl reads it; its current context (dead) says speech. No call is made.
    assert subjects(run(base, clean_env(tmp_path, KUBECONFIG=str(kubeconfig)))) == ["Deployment speech/vllm"]
    assert subjects(run([*base, "--kubeconfig", str(kubeconfig), "--context", "live"],
                        clean_env(tmp_path))) == ["Deployment llm/vllm"]
    assert subjects(run([*base, "--kubeconfig", str(kubeconfig), "-n", "modelcars"],
                        clean_env(tmp_path))) == ["Deployment modelcars/vllm"]
    assert subjects(run(base, clean_env(tmp_path))) == ["Deployment default/vllm"]


def test_f_reads_directories_repeats_and_stdin_in_order(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    (manifests / "nested").mkdir(parents=True)
    (manifests / "b.yaml").write_text(yaml.safe_dump(deployment("b", "llm")))
    (manifests / "a.yml").write_text(yaml.safe_dump_all([deployment("a1", "llm"), deployment("a2", "llm")]))
    (manifests / "c.json").write_text(json.dumps(deployment("c", "llm")))
    (manifests / "notes.txt").write_text("not a manifest")
    (manifests / "nested" / "d.yaml").write_text(yaml.safe_dump(deployment("d", "llm")))
    single = tmp_path / "e.yaml"
    single.write_text(yaml.safe_dump(deployment("e", "llm")))
    env = clean_env(tmp_path)
    base = ["explain", "--policies", str(POLICIES), "-o", "json"]
    result = run([*base, "-f", str(single), "-f", str(manifests), "-f", "-"], env,
                 stdin=yaml.safe_dump(deployment("from-stdin", "llm")))
    assert subjects(result) == ["Deployment llm/e", "Deployment llm/a1", "Deployment llm/a2", "Deployment llm/b",
                                "Deployment llm/c", "Deployment llm/from-stdin"]
    recursive = run([*base, "-R", "-f", str(manifests)], env)
    assert subjects(recursive)[-1] == "Deployment llm/d"

    twice = run([*base, "-f", "-", "-f", "-"], env, stdin="")
    assert twice.returncode == 2 and "standard input can be read only once" in twice.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run([*base, "-f", str(empty)], env)
    assert nothing.returncode == 2 and "no .yaml, .yml, .json files in this directory" in nothing.stderr
    # inject prints every object of every -f, in the same order.
    injected = run(["inject", "--policies", str(POLICIES), "-f", str(single), "-f", str(manifests)], env)
    assert injected.returncode == 0, injected.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(injected.stdout)] == ["e", "a1", "a2", "b", "c"]


@pytest.mark.parametrize("command", ["inject", "explain"])
def test_n_against_the_objects_own_namespace_is_refused(tmp_path: Path, command: str) -> None:
    src = tmp_path / "dep.yaml"
    src.write_text(yaml.safe_dump_all([deployment("free"), deployment("vllm", "llm")]))
    env = clean_env(tmp_path)
    refused = run([command, "-f", str(src), "-n", "speech", "--policies", str(POLICIES)], env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert ("Deployment vllm: the namespace from the provided object 'llm' does not match the namespace 'speech' "
            "given with -n; pass -n llm, or leave -n out") in refused.stderr
    # The same namespace, or none given: no refusal.
    assert run([command, "-f", str(src), "-n", "llm", "--policies", str(POLICIES)], env).returncode == 0
    inside_a_list = tmp_path / "list.yaml"
    inside_a_list.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [deployment("x", "llm")]}))
    assert run([command, "-f", str(inside_a_list), "-n", "speech", "--policies", str(POLICIES)], env).returncode == 2


def test_exit_codes_tell_findings_from_usage_from_runtime(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    good, denied = tmp_path / "good.yaml", tmp_path / "denied.yaml"
    good.write_text(yaml.safe_dump(deployment("vllm", "llm")))
    denied.write_text(yaml.safe_dump(deployment("vllm", "llm", model="llama-9")))
    for command in ("inject", "explain"):
        assert run([command, "-f", str(good), "--policies", str(POLICIES)], env).returncode == 0
        assert run([command, "-f", str(denied), "--policies", str(POLICIES)], env).returncode == 1
        assert run([command, "-f", str(tmp_path / "nope.yaml"), "--policies", str(POLICIES)], env).returncode == 2
        assert run([command, "-f", str(good), "--context"], env).returncode == 2  # argparse
        no_kubeconfig = run([command, "-f", str(good), "--from-cluster"], env)
        assert no_kubeconfig.returncode == 3
        assert "--from-cluster: no kubeconfig found; pass --kubeconfig FILE" in no_kubeconfig.stderr
        broken = tmp_path / "broken-kubeconfig"
        broken.write_text("clusters: [\n")
        unusable = run([command, "-f", str(good), "--policies", str(POLICIES), "--kubeconfig", str(broken)], env)
        assert unusable.returncode == 3 and "cannot read the kubeconfig" in unusable.stderr


def test_strict_makes_a_warning_a_finding(tmp_path: Path) -> None:
    """phi-2 is a memory model with a preload: injected, with the re-download warning."""
    src = tmp_path / "phi.yaml"
    src.write_text(yaml.safe_dump(deployment("phi", "llm", model="phi-2")))
    env = clean_env(tmp_path)
    lenient = run(["explain", "-f", str(src), "--policies", str(POLICIES), "-o", "json"], env)
    assert lenient.returncode == 0 and json.loads(lenient.stdout)["verdicts"][0]["warnings"]
    strict = run(["explain", "-f", str(src), "--policies", str(POLICIES), "-o", "json", "--strict"], env)
    assert strict.returncode == 1 and json.loads(strict.stdout)["ok"] is False


def test_policies_outside_a_checkout(tmp_path: Path) -> None:
    """From another directory `policies` is not there: MODEL_CACHE_POLICIES, or a message with the ways out."""
    example = str(REPO / "examples/vllm-deployment.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = run(["explain", "-f", example], clean_env(tmp_path), cwd=elsewhere)
    assert lost.returncode == 2
    assert ("policy directory policies not found; pass --policies DIR, set MODEL_CACHE_POLICIES=DIR, "
            "or read the cluster's with --from-cluster") in lost.stderr
    found = run(["explain", "-f", example], clean_env(tmp_path, MODEL_CACHE_POLICIES=str(POLICIES)), cwd=elsewhere)
    assert found.returncode == 0 and "injected: model llama-3-8b" in found.stdout


def test_the_readmes_explain_example_runs_as_written() -> None:
    """The README's "I added the annotation and nothing happened" session, run from the checkout."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("$ .venv/bin/model-cache explain", 1)[1].split("```", 1)[0]
    command, *expected = block.strip("\n").splitlines()
    args = command.split(";")[0].split()
    result = subprocess.run([MODEL_CACHE, "explain", *args], capture_output=True, text=True, cwd=REPO, timeout=60,
                            env=clean_env(REPO))
    assert [*result.stdout.splitlines(), f"exit {result.returncode}"] == expected
