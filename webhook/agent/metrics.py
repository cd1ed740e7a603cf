"""The agent's Prometheus metrics, one series per node."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()
BYTES = Gauge("model_cache_agent_bytes", "bytes of complete models in the node's cache", ["node"], registry=REGISTRY)
MODELS = Gauge("model_cache_agent_models", "complete models in the node's cache", ["node"], registry=REGISTRY)
PREWARMED = Gauge("model_cache_agent_prewarmed_models", "models the policy keeps warm on the node, held",
                  ["node"], registry=REGISTRY)
DOWNLOADS = Counter("model_cache_agent_downloads", "prewarm downloads the agent ran, by result",
                    ["node", "result"], registry=REGISTRY)
EVICTIONS = Counter("model_cache_agent_evictions", "models evicted under the node's quota", ["node"],
                    registry=REGISTRY)
EVICTED_BYTES = Counter("model_cache_agent_evicted_bytes", "bytes evicted under the node's quota", ["node"],
                        registry=REGISTRY)
SYNC_ERRORS = Counter("model_cache_agent_sync_errors", "passes that could not talk to the API server",
                      ["node"], registry=REGISTRY)
