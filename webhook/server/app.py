"""The Flask app: routes only. A review's body is read by body, answered by the
pure handlers of webhook.admission, accounted for by reporting and written
back by answers."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.exceptions import HTTPException

from webhook import admission
from webhook.admission.handlers import is_pod_create
from webhook.policy import PolicyStore
from webhook.server import answers, body, metrics, reporting
from webhook.server.events import EventRecorder, create_event_recorder
from webhook.validate.facts import FactsSource
from webhook.validate.lookups import create_facts_provider

log = logging.getLogger("webhook.app")
JSON = "application/json"


def create_app(policies: Path | str, certfile: str | None = None, keyfile: str | None = None,
               warn_only: bool = False, events: bool = False, downloader_image: str | None = None) -> Flask:
    app = Flask("model-cache")
    store = PolicyStore(
        Path(policies),
        on_rejected=lambda name: metrics.POLICY_RELOAD_ERRORS.labels(file=name).inc(),
        on_invalid_count=metrics.POLICY_FILES_BAD.set,
        downloader_image=downloader_image,
    )
    app.extensions["model_cache_store"] = store
    reviews = Reviews(store, create_facts_provider(), create_event_recorder(events), warn_only)
    registries = metrics.registries(certfile)

    app.add_url_rule("/mutate", "mutate", review_view("mutate", reviews.mutate), methods=["POST"])
    app.add_url_rule("/validate", "validate", review_view("validate", reviews.validate), methods=["POST"])
    app.add_url_rule("/healthz", "healthz", lambda: Response("ok\n", mimetype="text/plain"))
    app.add_url_rule("/readyz", "readyz", lambda: readyz(store, (certfile, keyfile)))
    app.add_url_rule("/metrics", "metrics", lambda: metrics_page(registries))
    app.register_error_handler(Exception, unexpected)
    return app


@dataclass
class Reviews:
    """The answer to a review already read, from the pure handlers; a bug in
    them still gives the API server an answer."""

    store: PolicyStore
    facts: FactsSource | None
    recorder: EventRecorder | None
    warn_only: bool

    def mutate(self, req: dict[str, Any]) -> admission.Answer:
        try:
            return admission.answer_mutation(req, self.store, self.facts, warn_only=self.warn_only)
        except Exception:  # noqa: BLE001 - a bug must still give the API server an answer
            log.exception("mutation failed", extra={"uid": req["uid"]})
            return answers.errored(
                req["uid"], f"model-cache failed on this pod (a bug; see the webhook log for uid {req['uid']})")

    def validate(self, req: dict[str, Any]) -> admission.Answer:
        try:
            answer = admission.answer_validation(req, self.store, self.facts, warn_only=self.warn_only)
        except Exception:  # noqa: BLE001 - never fail a pod for a bug in an advisory check
            log.exception("validation failed", extra={"uid": req["uid"]})
            answer = answers.allowed(req["uid"], ["model-cache could not check this pod (webhook error; see its log)"],
                                     result="error")
        if self.recorder is not None and answer.warnings and is_pod_create(req):
            self.recorder.record(req, answer.warnings)
        return answer


def review_view(endpoint: str, answer_of: Callable[[dict[str, Any]], admission.Answer]) -> Callable[[], Response]:
    """The view of ENDPOINT: read the review, answer it, account for it."""

    def view() -> Response:
        started = time.perf_counter()
        req = body.read_review(request.stream, request.content_length)
        if isinstance(req, (body.Malformed, body.Incomplete)):
            reporting.refused(endpoint, req)
            refusal = answers.unreadable(req)
            # No review was read, so the HTTP status carries the error as well.
            return _reply(refusal, status=refusal.code or 400)
        answer = answer_of(req)
        reporting.answered(endpoint, answer, req, time.perf_counter() - started)
        return _reply(answer)

    return view


def readyz(store: PolicyStore, tls_files: tuple[str | None, ...]) -> Response:
    store.maybe_reload()
    ok, detail = store.readiness()
    problems = [] if ok else [detail]
    problems += [f"certificate file {path} is missing" for path in tls_files if path and not os.path.exists(path)]
    if problems:
        return Response("not ready: " + "; ".join(problems) + "\n", status=503, mimetype="text/plain")
    return Response(f"ready: {detail}\n", mimetype="text/plain")


def metrics_page(registries: list[CollectorRegistry]) -> Response:
    return Response(b"".join(generate_latest(r) for r in registries), mimetype=CONTENT_TYPE_LATEST)


def unexpected(err: Exception) -> Response:
    if isinstance(err, HTTPException):  # 404, 405: Flask's own answer is right
        return err  # type: ignore[return-value]
    log.exception("unhandled error on %s", request.path)
    return _reply(answers.errored("", "model-cache internal error; see the webhook log"), status=500)


def _reply(answer: admission.Answer, status: int = 200) -> Response:
    return Response(answers.encode(answer), status=status, mimetype=JSON)
