"""What each review leaves behind: its counts in the metrics and a log line."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from webhook.admission.envelope import Answer
from webhook.server import metrics
from webhook.server.body import Incomplete, Unreadable

log = logging.getLogger("webhook.app")


def answered(endpoint: str, answer: Answer, request: Mapping[str, Any], elapsed: float) -> None:
    """Counts and times ANSWER; logs it unless the object was none of ours."""
    metrics.LATENCY.labels(endpoint=endpoint).observe(elapsed)
    metrics.record(endpoint, answer)
    if answer.result != "skipped":
        log.info("%s %s", endpoint, answer.result, extra=log_fields(answer, request, elapsed))


def log_fields(answer: Answer, request: Mapping[str, Any], elapsed: float) -> dict[str, Any]:
    """The fields of the log line of an answered review."""
    meta = (request.get("object") or {}).get("metadata") or {}
    return {
        "uid": answer.uid,
        "namespace": request.get("namespace"),
        "pod": meta.get("name") or meta.get("generateName"),
        "strategy": answer.strategy,
        "reason": answer.message,
        "warnings": answer.warnings or None,
        "dryRun": bool(request.get("dryRun")),
        "ms": round(elapsed * 1000, 3),
    }


def refused(endpoint: str, outcome: Unreadable) -> None:
    """Logs a body that gave no review, and counts it as malformed unless the
    client merely went away: one quiet line then, no traceback, no count."""
    if isinstance(outcome, Incomplete):
        log.info("request body incomplete, client gone or too slow: %s", outcome.reason, extra={"endpoint": endpoint})
        return
    metrics.REVIEWS.labels(endpoint=endpoint, result="malformed", strategy="none").inc()
    log.warning("malformed review: %s", outcome.reason, extra={"uid": outcome.uid, "endpoint": endpoint})
