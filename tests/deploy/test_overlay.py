"""The recipe for your own policies, registry and namespace
(docs/examples/own-policies, documented in docs/install.md): rendered with
kustomize as an operator would apply it, for self-managed certificates and
for cert-manager."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import REPO, kustomize, one, validate_strictly

EXAMPLE = REPO / "docs" / "examples" / "own-policies"
IMAGE = "registry.example.com/platform/model-cache:0.1.0"
NS = "ml-platform"
MODEL_CACHE = str(Path(sys.executable).with_name("model-cache"))
Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rendered() -> Docs:
    return kustomize(EXAMPLE)


def cert_manager_variant(tmp: Path) -> Docs:
    """The same overlay on manifests/cert-manager, as step 1 of the recipe says."""
    copy = tmp / "overlay"
    shutil.copytree(EXAMPLE, copy)
    k = yaml.safe_load((copy / "kustomization.yaml").read_text())
    k["resources"] = [os.path.relpath(REPO / "manifests" / "cert-manager", copy)]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(k))
    return kustomize(copy)


def test_valid_strictly(rendered: Docs) -> None:
    validate_strictly(rendered, minimum=11)


def _namespace_references(docs: Docs) -> list[tuple[str, str]]:
    """Every place a namespace is named: (where, namespace)."""
    refs = []
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if "namespace" in d["metadata"]:
            refs.append((where, d["metadata"]["namespace"]))
        for s in d.get("subjects", []):
            refs.append((where + " subject", s["namespace"]))
        for hook in d.get("webhooks", []):
            refs.append((where + " clientConfig", hook["clientConfig"]["service"]["namespace"]))
            for e in hook["namespaceSelector"]["matchExpressions"]:
                refs += [(f"{where} {hook['name']} namespaceSelector", v) for v in e["values"] if v != "kube-system"]
        ann = d["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
        if ann:
            refs.append((where + " inject-ca-from", ann.split("/")[0]))
        for name in d.get("spec", {}).get("dnsNames", []):
            if "." in name:
                refs.append((where + " dnsNames", name.split(".")[1]))
    return refs


def test_the_namespace_is_renamed_everywhere(rendered: Docs, tmp_path: Path) -> None:
    for docs, at_least in ((rendered, 18), (cert_manager_variant(tmp_path), 23)):
        refs = _namespace_references(docs)
        assert len(refs) >= at_least
        stale = [r for r in refs if r[1] != NS]
        assert not stale, f"still naming another namespace: {stale}"
        assert one(docs, "Namespace", NS)
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            hooks = one(docs, kind, "model-cache")["webhooks"]
            # The pod hooks exclude the renamed namespace and still kube-system.
            assert hooks[0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", NS]
    # Self-managed: the replacement adds no cert-manager annotation.
    assert "annotations" not in one(rendered, "MutatingWebhookConfiguration", "model-cache")["metadata"]


def test_one_place_for_the_image(rendered: Docs) -> None:
    (c,) = one(rendered, "Deployment", "model-cache")["spec"]["template"]["spec"]["containers"]
    assert c["image"] == IMAGE
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MODEL_CACHE_DOWNLOADER_IMAGE"] == IMAGE
    assert "ghcr.io" not in yaml.safe_dump_all(rendered)


def test_own_policies_replace_the_examples(rendered: Docs) -> None:
    cm = one(rendered, "ConfigMap", "model-cache-policies")
    assert cm["metadata"]["namespace"] == NS
    assert cm["metadata"]["labels"]["model.cache/policy"] == "true"  # checked at apply time by the webhook
    files = {p.name: p.read_text() for p in (EXAMPLE / "policies").glob("*.yaml")}
    assert cm["data"] == files
    volumes = one(rendered, "Deployment", "model-cache")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "policies", "configMap": {"name": "model-cache-policies"}} in volumes


def test_every_example_policy_file_is_listed_and_valid() -> None:
    k = yaml.safe_load((EXAMPLE / "kustomization.yaml").read_text())
    (gen,) = k["configMapGenerator"]
    listed = {Path(f.split("=", 1)[-1]).name for f in gen["files"]}
    assert listed == {p.name for p in (EXAMPLE / "policies").iterdir()}
    check = subprocess.run([MODEL_CACHE, "policy", "check", str(EXAMPLE / "policies")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in listed:
        policy = yaml.safe_load((EXAMPLE / "policies" / name).read_text())
        # The image is the kustomization's; a policy naming one would need a second edit.
        assert "image" not in (policy.get("defaults", {}).get("downloader") or {}), name


def test_the_downloader_runs_the_overlay_image(rendered: Docs, tmp_path: Path) -> None:
    """What the webhook in that Deployment injects: the Deployment's env, the overlay's policies."""
    (c,) = one(rendered, "Deployment", "model-cache")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vllm", "namespace": "team-a",
           "annotations": {"model.cache/name": "llama-3-8b"}},
           "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.0"}]}}
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    out = subprocess.run([MODEL_CACHE, "inject", "-f", str(tmp_path / "pod.yaml"), "--namespace", "team-a",
                          "--policies", str(EXAMPLE / "policies")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    injected = yaml.safe_load(out.stdout)
    images = {c["name"]: c["image"] for c in injected["spec"]["initContainers"]}
    assert images == {"model-cache-download": IMAGE}
