"""The answers the server makes itself, one named constructor per kind (as
controller-runtime's admission package has Allowed, Denied and Errored), and
an answer written out as the bytes of its AdmissionReview."""

from __future__ import annotations

import json
from typing import Sequence

from webhook.admission.review import Answer
from webhook.server.body import Incomplete, Unreadable


def allowed(uid: str, warnings: Sequence[str] = (), result: str = "allowed") -> Answer:
    """Let the object through, with WARNINGS for whoever sent it."""
    return Answer(uid=uid, allowed=True, warnings=list(warnings), result=result)


def denied(uid: str, message: str, code: int = 403, result: str = "denied") -> Answer:
    """Refuse the object; MESSAGE is what the user sees from the API server."""
    return Answer(uid=uid, allowed=False, message=message, code=code, result=result)


def errored(uid: str, message: str, code: int = 500) -> Answer:
    """Refuse the object because the webhook failed, not the object."""
    return denied(uid, message, code, result="error")


def malformed(reason: str, uid: str = "", status: int = 400) -> Answer:
    """A well-formed AdmissionReview answering a request that was not one."""
    return denied(uid, reason, status, result="malformed")


def unreadable(outcome: Unreadable) -> Answer:
    """The answer to a body that could not be read into a review."""
    if isinstance(outcome, Incomplete):
        return malformed(f"request body incomplete: {outcome.reason}")
    return malformed(outcome.reason, outcome.uid, outcome.status)


def encode(answer: Answer) -> bytes:
    """The AdmissionReview of ANSWER as compact JSON."""
    return json.dumps(answer.review(), separators=(",", ":")).encode()
