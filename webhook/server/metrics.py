"""Prometheus metrics. gunicorn runs several worker processes, so the
registry is multiprocess-aware when PROMETHEUS_MULTIPROC_DIR is set (serve sets it)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from webhook.admission import Answer

REVIEWS = Counter(
    "model_cache_reviews_total",
    "Admission reviews answered, by endpoint, result (mutated, skipped, denied, allowed, warned, warn-only, malformed, error) and strategy.",
    ["endpoint", "result", "strategy"],
)
LATENCY = Histogram(
    "model_cache_review_seconds",
    "Time to answer an admission review, by endpoint.",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
POLICY_RELOAD_ERRORS = Counter(
    "model_cache_policy_reload_errors_total",
    "Policy files that failed to load; the last good version stays in force.",
    ["file"],
)
POLICY_FILES_BAD = Gauge(
    "model_cache_policy_files_invalid",
    "Policy files whose current content is invalid (last good version in force).",
    multiprocess_mode="max",
)
WARNINGS = Counter(
    "model_cache_warnings_total",
    "Warnings returned by /validate, by rule.",
    ["rule"],
)
WARN_ONLY_DENIALS = Counter(
    "model_cache_warn_only_denials_total",
    "Reviews that would have been denied, allowed with a warning because serve runs with --warn-only.",
    ["endpoint"],
)


def record(endpoint: str, answer: "Answer") -> None:
    """Counts one answered review, its warnings by rule and a warn-only denial."""
    REVIEWS.labels(endpoint=endpoint, result=answer.result, strategy=answer.strategy).inc()
    for rule in answer.rules:
        # A warn-only denial of /mutate is counted below, not as a warning.
        if endpoint == "validate" or rule != "warn-only-denial":
            WARNINGS.labels(rule=rule).inc()
    if answer.would_deny:
        WARN_ONLY_DENIALS.labels(endpoint=endpoint).inc()


def registries(certfile: str | None) -> list[CollectorRegistry]:
    """What /metrics renders: every worker's counters (summed through the
    multiprocess directory that serve sets up) plus certificate expiry."""
    from webhook.certs.expiry import CertificateCollector  # cryptography, only where a server runs

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    found = [counters]
    if certfile:
        # A registry of its own: create_app may run more than once in a process.
        expiry = CollectorRegistry()
        expiry.register(CertificateCollector(certfile))
        found.append(expiry)
    return found
