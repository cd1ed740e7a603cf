"""Realistic pods as /validate sees them: after every mutating webhook ran
(model-cache's additions, a mesh sidecar, the service-account token volume).
Built by hand in their final shape, independent of webhook/mutate/ (so they check it)."""

from __future__ import annotations

import copy
from typing import Any

REVISIONS = {"llama-3-8b": "0e9e39f249a16976918f6564b8830bc894c89659"}
SIZES = {"llama-3-8b": "16Gi", "mistral-7b": "15Gi", "phi-2": "6Gi", "asr-en": "24Gi", "granite-tag": "8Gi",
         "granite-digest": "8Gi"}
CREDENTIALS = {"hf": ("HF_TOKEN",), "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
GRANITE_DIGEST = "quay.io/example/granite-3b-modelcar@sha256:4b8d8e6b0a3f5d6e2c1b9a7f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d"


def _vllm(model: str, memory_limit: str | None = "32Gi") -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
                                 "limits": {"nvidia.com/gpu": "1"}}
    if memory_limit:
        resources["limits"]["memory"] = memory_limit
    return {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.6.3",
        "args": ["--model", "/model-cache", "--served-model-name", model, "--max-model-len", "8192"],
        "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"}],
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "MODEL_CACHE_PATH", "value": "/model-cache"}],
        "resources": resources,
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 5},
        "volumeMounts": [
            {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True},
        ],
    }


def _istio_sidecar() -> dict[str, Any]:
    return {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.23.2", "restartPolicy": "Always",
            "args": ["proxy", "sidecar"], "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                         "limits": {"cpu": "2", "memory": "1Gi"}}}


def _downloader(model: str, source: str, secret: str | None, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    env: list[dict[str, Any]] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    if secret:
        env.append({"name": "MODEL_CACHE_AUTH_SECRET", "value": secret})
        scheme = source.split("://")[0]
        for key in keys if keys is not None else CREDENTIALS.get(scheme, ()):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        if scheme == "s3":
            env.append({"name": "AWS_SESSION_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": secret, "key": "AWS_SESSION_TOKEN", "optional": True}}})
    revision = REVISIONS.get(model, "main")
    return {
        "name": "model-cache-download", "image": "ghcr.io/model-cache/model-cache:0.1.0",
        "command": ["model-cache"], "args": ["download", "--source", source, "--dest", f"/model-cache/{model}/{revision}"],
        "env": env, "volumeMounts": [{"name": "model-cache", "mountPath": "/model-cache"}],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    }


SOURCES = {
    "llama-3-8b": "hf://meta-llama/Llama-3.1-8B-Instruct",
    "mistral-7b": "s3://models/mistralai/Mistral-7B-Instruct-v0.3/",
    "phi-2": "s3://models/microsoft/phi-2/",
    "asr-en": "https://models.example.com/asr-en-v3.tar.gz",
    "granite-tag": "oci://quay.io/example/granite-3b-modelcar:v1.2",
    "granite-digest": "oci://" + GRANITE_DIGEST,
}
SECRETS = {"llama-3-8b": "hf-token", "mistral-7b": "s3-models"}


def final_pod(model: str = "llama-3-8b", strategy: str = "pvc", *, claim: str = "llm-models",
              preload: bool = True, memory_limit: str | None = "32Gi", node_selector: bool = True,
              secret_keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A vLLM pod of a Deployment in namespace ml, as model-cache (and istio) left it."""
    revision = REVISIONS.get(model, "main")
    vllm = _vllm(model, memory_limit)
    sub_path = f"{model}/{revision}"
    vllm["volumeMounts"] += [{"name": "model-cache", "mountPath": "/model-cache", "readOnly": True,
                              **({"subPath": sub_path} if strategy in ("pvc", "hostpath", "memory") else {})},
                             {"name": "model-cache-shm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [
        {"name": "kube-api-access-x7k2p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "model-cache-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
    ]
    size = SIZES[model]
    volumes.append({
        "pvc": {"name": "model-cache", "persistentVolumeClaim": {"claimName": claim}},
        "hostpath": {"name": "model-cache", "hostPath": {"path": "/mnt/nvme/model-cache", "type": "DirectoryOrCreate"}},
        "memory": {"name": "model-cache", "emptyDir": {"medium": "Memory", "sizeLimit": size}},
        "oci": {"name": "model-cache", "emptyDir": {"sizeLimit": size}},
        "image": {"name": "model-cache", "image": {"reference": SOURCES[model].removeprefix("oci://"), "pullPolicy": "IfNotPresent"}},
    }[strategy])
    inits = [_istio_sidecar()]
    if strategy in ("pvc", "hostpath", "memory") and preload:
        inits.append(_downloader(model, SOURCES[model], SECRETS.get(model), secret_keys))
    if strategy == "oci":
        inits.append({"name": "model-cache-oci-copy", "image": SOURCES[model].removeprefix("oci://"),
                      "command": ["cp", "-R", "/models/.", "/model-cache/"],
                      "volumeMounts": [{"name": "model-cache", "mountPath": "/model-cache"}]})
    annotations = {
        "model.cache/name": model,
        "model.cache/injected": f"{strategy}/{model}/{revision}",
        "sidecar.istio.io/status": '{"initContainers":["istio-proxy"]}',
        "kubectl.kubernetes.io/default-container": "vllm",
    }
    if not preload:
        annotations["model.cache/preload"] = "false"
    spec: dict[str, Any] = {
        "containers": [vllm],
        "initContainers": inits,
        "volumes": volumes,
        "restartPolicy": "Always",
        "serviceAccountName": "default",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "schedulerName": "default-scheduler",
    }
    if node_selector:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-L4"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": f"{model}-7f9c5d-", "namespace": "ml",
                     "labels": {"app": model, "pod-template-hash": "7f9c5d"}, "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{model}-7f9c5d",
                                          "uid": "3c1f0c8e-1111-4d7e-9a7a-1d2b3c4d5e6f", "controller": True}]},
        "spec": spec,
    }


def tgi_template(model: str, annotations: dict[str, str] | None = None, memory_limit: str | None = "24Gi",
                 node_selector: bool = False) -> dict[str, Any]:
    """A TGI pod template as written in a Deployment, before any mutation."""
    resources: dict[str, Any] = {"requests": {"cpu": "2", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": "1"}}
    if memory_limit:
        resources["limits"]["memory"] = memory_limit
    spec: dict[str, Any] = {"containers": [
        {"name": "tgi", "image": "ghcr.io/huggingface/text-generation-inference:2.4.0",
         "args": ["--model-id", "/model-cache"], "resources": resources,
         "ports": [{"containerPort": 80}]},
        {"name": "metrics-exporter", "image": "prom/statsd-exporter:v0.27.1",
         "resources": {"limits": {"memory": "64Mi"}}},
    ]}
    if node_selector:
        spec["nodeSelector"] = {"node.kubernetes.io/instance-type": "g6.xlarge"}
    return {"metadata": {"labels": {"app": model}, "annotations": {"model.cache/name": model, **(annotations or {})}},
            "spec": spec}


def deployment(template: dict[str, Any], name: str = "tgi", *, namespace: str = "ml",
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment NAME of TEMPLATE, selecting its pods by label app=NAME; ANNOTATIONS
    on the Deployment's own metadata. The one Deployment builder of these tests."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": name}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}}, "template": copy.deepcopy(template)}}
