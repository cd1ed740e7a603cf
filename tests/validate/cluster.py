"""What the validating half's tests share beyond fixtures: the policy of
namespace ml (one model per rule) and a FactsProvider on a kubeconfig."""

from __future__ import annotations

from pathlib import Path

from webhook.validate.lookups import FactsProvider, Settings, load_configuration

POLICY_ML = """\
apiVersion: model.cache/v1alpha1
kind: ModelCachePolicy
defaults:
  strategy: pvc
  pvc: {claimName: llm-models}
  pvcHeadroomPercent: 20
  hostPath: {path: /mnt/nvme/model-cache, requireNodePinning: true}
models:
  llama-3-8b:
    source: hf://meta-llama/Llama-3.1-8B-Instruct
    revision: 0e9e39f249a16976918f6564b8830bc894c89659
    size: 16Gi
    authSecretName: hf-token
  mistral-7b:
    source: s3://models/mistralai/Mistral-7B-Instruct-v0.3/
    size: 15Gi
    authSecretName: s3-models
  phi-2:
    source: s3://models/microsoft/phi-2/
    size: 6Gi
    strategy: memory
  asr-en:
    source: https://models.example.com/asr-en-v3.tar.gz
    size: 24Gi
    strategy: hostpath
  granite-tag:
    source: oci://quay.io/example/granite-3b-modelcar:v1.2
    ociPath: /models
    size: 8Gi
    strategy: oci
  granite-digest:
    source: oci://quay.io/example/granite-3b-modelcar@sha256:4b8d8e6b0a3f5d6e2c1b9a7f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d
    ociPath: /models
    size: 8Gi
    strategy: image
"""


def make_provider(kubeconfig: Path, **settings: float) -> FactsProvider:
    configuration = load_configuration({"MODEL_CACHE_KUBECONFIG": str(kubeconfig)})
    assert configuration is not None
    # Generous unless a test is about time: other suites may share the 2 cores.
    defaults = {"budget": 5.0, "http_timeout": 5.0, "breaker_seconds": 5.0}
    return FactsProvider(configuration, Settings(**{**defaults, **settings}))  # type: ignore[arg-type]
