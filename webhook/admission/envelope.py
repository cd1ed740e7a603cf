"""AdmissionReview in and out: the body read into a request whose shape has been
checked (at most MAX_BODY_BYTES), and the answer, made by one named
constructor per kind (as controller-runtime's admission package has
Allowed, Denied and Errored), written back as an AdmissionReview."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from webhook.admission.shapes import check_request
from webhook.errors import MalformedReview, TooLarge

API_VERSION = "admission.k8s.io/v1"
MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own pod-security webhook uses 3 MiB
# Kubernetes objects nest a dozen levels; anything far deeper is an attack on
# the recursive code that walks them (patch, copy), not a pod.
MAX_DEPTH = 64


@dataclass
class Answer:
    """One AdmissionResponse, plus what the metrics and logs need."""

    uid: str
    allowed: bool = True
    patch: list[dict[str, Any]] | None = None
    message: str | None = None
    code: int | None = None
    warnings: list[str] = field(default_factory=list)
    result: str = "skipped"  # mutated, skipped, denied, allowed, warned, error, malformed
    strategy: str = "none"
    rules: list[str] = field(default_factory=list)  # the rule behind each warning, for metrics
    would_deny: bool = False  # warn-only mode let through what it would have denied

    def review(self) -> dict[str, Any]:
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(self.patch).encode()).decode()
        if self.message is not None or self.code is not None:
            response["status"] = {"code": self.code or (200 if self.allowed else 403), "message": self.message or ""}
        if self.warnings:
            response["warnings"] = self.warnings
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def allowed(uid: str, warnings: Sequence[str] = (), result: str = "allowed", rules: Sequence[str] = ()) -> Answer:
    """Let the object through, with WARNINGS for whoever sent it (RULES: the rule behind each)."""
    return Answer(uid=uid, allowed=True, warnings=list(warnings), result=result, rules=list(rules))


def skipped(uid: str) -> Answer:
    """Let the object through untouched: not ours to change or check."""
    return Answer(uid=uid)


def patched(uid: str, patch: list[dict[str, Any]], strategy: str) -> Answer:
    """Let the pod through as PATCH changes it (a pod given a model by STRATEGY)."""
    return Answer(uid=uid, patch=patch, result="mutated", strategy=strategy)


def denied(uid: str, message: str, code: int = 403, result: str = "denied") -> Answer:
    """Refuse the object; MESSAGE is what the user sees from the API server."""
    return Answer(uid=uid, allowed=False, message=message, code=code, result=result)


def would_deny(uid: str, warning: str, warnings: Sequence[str] = (), rules: Sequence[str] = ()) -> Answer:
    """Warn-only mode: let through what would be denied, the denial said as WARNING
    after the other WARNINGS (and counted by the server)."""
    return Answer(uid=uid, warnings=[*warnings, warning], rules=[*rules, "warn-only-denial"], result="warn-only",
                  would_deny=True)


def errored(uid: str, message: str, code: int = 500) -> Answer:
    """Refuse the object because the webhook failed, not the object."""
    return denied(uid, message, code, result="error")


def malformed(reason: str, uid: str = "", status: int = 400) -> Answer:
    """A well-formed AdmissionReview answering a request that was not one."""
    return denied(uid, reason, status, result="malformed")


def too_large(length: int) -> str:
    """Why a body of LENGTH bytes is refused (HTTP 413)."""
    return f"request body is {length} bytes; the limit is {MAX_BODY_BYTES}"


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def parse_review(body: bytes) -> dict[str, Any]:
    """The review's `request`, its shape checked; MalformedReview (or TooLarge)
    saying what is wrong otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(too_large(len(body)))
    try:
        review = json.loads(body)
    except RecursionError:
        raise MalformedReview(f"body nests deeper than {MAX_DEPTH} levels; no Kubernetes object does") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedReview(f"body is not JSON: {err}") from None
    if not isinstance(review, dict):
        raise MalformedReview("body is not a JSON object; expected an AdmissionReview")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise MalformedReview(
            f"expected apiVersion {API_VERSION} kind AdmissionReview, got "
            f"apiVersion {str(review.get('apiVersion'))[:60]!r} kind {str(review.get('kind'))[:60]!r}; "
            f"set admissionReviewVersions: [v1] in the webhook configuration"
        )
    if _too_deep(review):
        raise MalformedReview(f"body nests deeper than {MAX_DEPTH} levels; no Kubernetes object does")
    return check_request(review.get("request"))


def request_uid(body: bytes) -> str:
    """Best effort: the uid of a review we could not parse, to answer it by name."""
    try:
        uid = json.loads(body)["request"]["uid"]
        return uid if isinstance(uid, str) else ""
    except Exception:  # noqa: BLE001 - any shape at all may arrive here, RecursionError included
        return ""

