"""The answers the server makes itself, and what each review leaves in the
metrics and the log, without Flask."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import REGISTRY

from webhook.admission.envelope import Answer
from webhook.server import answers, reporting
from webhook.server.body import Incomplete, Malformed, too_large


def response(answer: Answer) -> dict:
    review = json.loads(answers.encode(answer))
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    return review["response"]


def test_allowed_carries_warnings_and_no_status() -> None:
    assert response(answers.allowed("u1", ["w"])) == {"uid": "u1", "allowed": True, "warnings": ["w"]}
    assert response(answers.allowed("u1")) == {"uid": "u1", "allowed": True}


def test_denied_errored_and_malformed_refuse_with_their_code() -> None:
    assert response(answers.denied("u1", "no")) == {"uid": "u1", "allowed": False,
                                                     "status": {"code": 403, "message": "no"}}
    assert response(answers.errored("u1", "bug")) == {"uid": "u1", "allowed": False,
                                                      "status": {"code": 500, "message": "bug"}}
    assert answers.errored("u1", "bug").result == "error"
    malformed = answers.malformed("bad", "u2", 413)
    assert malformed.result == "malformed" and response(malformed)["status"] == {"code": 413, "message": "bad"}


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [
        (too_large(5), 413, "request body is 5 bytes; the limit is 3145728"),
        (Malformed("body is not JSON", "u3"), 400, "body is not JSON"),
        (Incomplete("3 of 9 bytes received"), 400, "request body incomplete: 3 of 9 bytes received"),
    ],
)
def test_an_unreadable_body_is_answered_with_why(outcome: Malformed | Incomplete, code: int, message: str) -> None:
    answer = answers.unreadable(outcome)
    assert answer.code == code and response(answer)["status"] == {"code": code, "message": message}
    assert answer.uid == getattr(outcome, "uid", "")


def _count(result: str) -> float:
    labels = {"endpoint": "mutate", "result": result, "strategy": "none"}
    return REGISTRY.get_sample_value("model_cache_reviews_total", labels) or 0.0


def test_a_malformed_body_is_counted_and_a_client_gone_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="webhook.app")
    before = _count("malformed")
    reporting.refused("mutate", Malformed("body is not JSON", "u4"))
    assert _count("malformed") == before + 1
    reporting.refused("mutate", Incomplete("3 of 9 bytes received"))
    assert _count("malformed") == before + 1
    [bad, gone] = caplog.records
    assert (bad.levelname, bad.getMessage(), bad.uid) == ("WARNING", "malformed review: body is not JSON", "u4")
    assert (gone.levelname, gone.getMessage()) == (
        "INFO", "request body incomplete, client gone or too slow: 3 of 9 bytes received")


def test_an_answered_review_logs_who_and_what() -> None:
    request = {"namespace": "ml", "dryRun": True, "object": {"metadata": {"generateName": "vllm-"}}}
    answer = Answer(uid="u5", allowed=False, message="no such model", result="denied", warnings=["w"])
    assert reporting.log_fields(answer, request, 0.0012345) == {
        "uid": "u5", "namespace": "ml", "pod": "vllm-", "strategy": "none", "reason": "no such model",
        "warnings": ["w"], "dryRun": True, "ms": 1.234}
