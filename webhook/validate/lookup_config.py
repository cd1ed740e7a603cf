"""How the validating half's lookups are set up: their time budgets and cache
lifetimes (Settings), and the client configuration (or None: lookups off)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Mapping

from kubernetes import client as k8s

from webhook import kube
from webhook.errors import KubeConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    budget: float = 0.5  # seconds one review may wait for all its lookups
    ttl: float = 30.0  # a fetched object is trusted this long
    missing_ttl: float = 5.0  # a 404 this long: someone is likely creating it right now
    error_ttl: float = 5.0  # a 403 or API error is not asked again sooner
    http_timeout: float = 2.0  # one background GET, connect + read
    breaker_seconds: float = 5.0  # after a transport failure, no GET for this long
    slow_budget: float = 0.05  # after a review gave up waiting: how long the next ones wait, for breaker_seconds
    max_stale: float = 300.0  # an older good value is served after an error up to this age
    max_entries: int = 4096
    workers: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        """MODEL_CACHE_FACTS_BUDGET, MODEL_CACHE_FACTS_TTL, MODEL_CACHE_FACTS_HTTP_TIMEOUT (seconds)."""
        values: dict[str, float] = {}
        for field, var in (("budget", "MODEL_CACHE_FACTS_BUDGET"), ("ttl", "MODEL_CACHE_FACTS_TTL"),
                           ("http_timeout", "MODEL_CACHE_FACTS_HTTP_TIMEOUT")):
            raw = env.get(var)
            if raw:
                try:
                    values[field] = float(raw)
                except ValueError:
                    log.error("%s=%r is not a number of seconds; using the default", var, raw)
        return cls(**values)  # type: ignore[arg-type]


def load_configuration(env: Mapping[str, str] = os.environ) -> k8s.Configuration | None:
    """webhook.kube's configuration; None (lookups off) when there is none, when
    it is broken (the checks are advisory: the webhook must serve anyway), or
    when MODEL_CACHE_CLUSTER_CHECKS=off."""
    if env.get("MODEL_CACHE_CLUSTER_CHECKS", "").strip().lower() in ("off", "false", "0", "no"):
        log.info("cluster checks off (MODEL_CACHE_CLUSTER_CHECKS)")
        return None
    try:
        cfg = kube.load_configuration(env)
    except KubeConfigError as err:
        log.error("cluster checks off: %s", err)
        return None
    if cfg is None:
        log.info("cluster checks off: no in-cluster config, MODEL_CACHE_KUBECONFIG, KUBECONFIG or ~/.kube/config")
    return cfg
