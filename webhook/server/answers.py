"""The answers the server makes itself (the named constructors are
admission/envelope.py's, re-exported for the server), and an answer written
out as the bytes of its AdmissionReview."""

from __future__ import annotations

import json

from webhook.admission.envelope import Answer, allowed, denied, errored, malformed
from webhook.server.body import Incomplete, Unreadable

__all__ = ["allowed", "denied", "encode", "errored", "malformed", "unreadable"]


def unreadable(outcome: Unreadable) -> Answer:
    """The answer to a body that could not be read into a review."""
    if isinstance(outcome, Incomplete):
        return malformed(f"request body incomplete: {outcome.reason}")
    return malformed(outcome.reason, outcome.uid, outcome.status)


def encode(answer: Answer) -> bytes:
    """The AdmissionReview of ANSWER as compact JSON."""
    return json.dumps(answer.review(), separators=(",", ":")).encode()
