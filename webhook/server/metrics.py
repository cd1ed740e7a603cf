"""Prometheus metrics. gunicorn runs several worker processes, so the
registry is multiprocess-aware when PROMETHEUS_MULTIPROC_DIR is set (serve sets it)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REVIEWS = Counter(
    "model_cache_reviews_total",
    "Admission reviews answered, by endpoint, result (mutated, skipped, denied, allowed, warned, malformed) and strategy.",
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
