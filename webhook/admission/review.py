"""AdmissionReview in and out: parsing the body, answering, the JSON patch."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from jsonpointer import escape as escape_pointer

from webhook import annotations as ann
from webhook import inject
from webhook.errors import Denied, MalformedReview, TooLarge
from webhook.policy import PolicyStore

log = logging.getLogger(__name__)

API_VERSION = "admission.k8s.io/v1"
MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own pod-security webhook uses 3 MiB
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass
class Answer:
    """One AdmissionResponse, plus what the metrics and logs need."""

    uid: str
    allowed: bool = True
    patch: list[dict[str, Any]] | None = None
    message: str | None = None
    code: int | None = None
    warnings: list[str] = field(default_factory=list)
    result: str = "skipped"  # mutated, skipped, denied, allowed, warned, error
    strategy: str = "none"

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


def malformed_answer(reason: str, uid: str = "", code: int = 400) -> dict[str, Any]:
    """A well-formed AdmissionReview for a request that was not one."""
    return Answer(uid=uid, allowed=False, message=reason, code=code, result="malformed").review()


def parse_review(body: bytes) -> dict[str, Any]:
    """The review's `request`, or MalformedReview saying what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedReview(f"body is not JSON: {err}") from None
    if not isinstance(review, dict):
        raise MalformedReview("body is not a JSON object; expected an AdmissionReview")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise MalformedReview(
            f"expected apiVersion {API_VERSION} kind AdmissionReview, got "
            f"apiVersion {review.get('apiVersion')!r} kind {review.get('kind')!r}; "
            f"set admissionReviewVersions: [v1] in the webhook configuration"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("AdmissionReview request has no uid")
    obj = request.get("object")
    if request.get("operation") != "DELETE" and not isinstance(obj, dict):
        raise MalformedReview("AdmissionReview request has no object", ) from None
    if not isinstance(request.get("kind"), dict):
        raise MalformedReview("AdmissionReview request has no kind")
    return request


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """The JSON patch from BEFORE to AFTER, by jsonpatch, computed only where they differ.

    jsonpatch diffs whole documents and looks for moves, which costs about half a
    millisecond on a pod; equal subtrees (most of a pod) are skipped here by a
    C-level `==` first, and jsonpatch diffs only what changed.
    """
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict) and before.keys() <= after.keys():
        ops: list[dict[str, Any]] = []
        for key, value in after.items():
            child = f"{path}/{escape_pointer(str(key))}"
            if key not in before:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                ops.extend(json_patch(before[key], value, child))
        return ops
    if isinstance(before, list) and isinstance(after, list):
        if len(before) == len(after):
            return [op for i, (b, a) in enumerate(zip(before, after)) for op in json_patch(b, a, f"{path}/{i}")]
        inserted = _insertions(before, after)
        if inserted is not None:
            # Ascending final positions: each add lands where it ends up.
            return [{"op": "add", "path": f"{path}/{i}", "value": after[i]} for i in inserted]
    ops = jsonpatch.make_patch(before, after).patch
    for op in ops:
        op["path"] = path + op["path"]
        if "from" in op:
            op["from"] = path + op["from"]
    return ops


def _insertions(before: list[Any], after: list[Any]) -> list[int] | None:
    """Indexes of AFTER's items that were inserted into BEFORE, when that is all
    that happened (the usual case: a container, volume or env var added);
    None otherwise, and jsonpatch works the difference out."""
    if len(after) <= len(before):
        return None
    inserted, j = [], 0
    for i, item in enumerate(after):
        if j < len(before) and item == before[j]:
            j += 1
        else:
            inserted.append(i)
    return inserted if j == len(before) else None


def request_uid(body: bytes) -> str:
    """Best effort: the uid of a review we could not parse, to answer it by name."""
    try:
        uid = json.loads(body)["request"]["uid"]
        return uid if isinstance(uid, str) else ""
    except Exception:  # noqa: BLE001 - any shape at all may arrive here
        return ""


def namespace_of(request: dict[str, Any]) -> str:
    return request.get("namespace") or (request["object"].get("metadata") or {}).get("namespace") or "default"


def _is_pod_create(request: dict[str, Any]) -> bool:
    kind = request.get("kind") or {}
    return (
        kind.get("kind") == "Pod"
        and kind.get("group", "") == ""
        and request.get("operation") == "CREATE"
        and not request.get("subResource")
    )


def mutate_pod(pod: dict[str, Any], namespace: str, store: PolicyStore) -> tuple[dict[str, Any] | None, inject.Plan | None]:
    """The mutated pod and its plan; (None, None) when the pod is left as it is.
    Raises Denied."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if MIRROR_ANNOTATION in annotations or inject.already_injected(pod):
        return None, None
    request = ann.parse(annotations)
    if request is None:
        return None, None
    model = store.resolve(namespace, request.model)
    mutated, plan = inject.mutate(pod, request, model)
    return (mutated, plan) if mutated is not None else (None, None)


def answer_mutation(request: dict[str, Any], store: PolicyStore) -> Answer:
    """The answer to one mutating review. Pure but for the policy lookup."""
    answer = Answer(uid=request["uid"])
    if not _is_pod_create(request):
        return answer
    pod = request["object"]
    try:
        mutated, plan = mutate_pod(pod, namespace_of(request), store)
    except Denied as err:
        answer.allowed, answer.message, answer.code, answer.result = False, str(err), 403, "denied"
        return answer
    if mutated is None or plan is None:
        return answer
    answer.patch = json_patch(pod, mutated)
    answer.result, answer.strategy = "mutated", plan.strategy
    return answer
