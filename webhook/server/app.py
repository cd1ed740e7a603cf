"""The Flask app: routes only. A review's body is read by body, answered by the
pure handlers of webhook.admission, accounted for by reporting and written
back by answers.

A POST to /mutate or /validate skips Flask's request machinery (ReviewRoutes):
the request and app contexts, URL matching, the Request and Response objects
cost about 0.1 ms of CPU per review, a fifth of all the CPU a /mutate takes in
the worker (docs/benchmarks.md). The review path needs none of it: a stream,
its length, bytes back. Everything else (GET /mutate's 405 included) is
Flask's.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from http import HTTPStatus
from typing import Iterable

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_content_length, get_input_stream

from webhook import admission
from webhook.admission.handlers import is_pod_create
from webhook.policy import PolicyStore
from webhook.server import answers, body, metrics, reporting
from webhook.server.events import EventRecorder, create_event_recorder
from webhook.facts.cluster import FactsSource
from webhook.validate.lookups import create_facts_provider

log = logging.getLogger("webhook.app")
JSON = "application/json"
CHECK_FAILED = "model-cache could not check this pod (webhook error; see its log)"


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

    review_routes = {"/mutate": review_endpoint("mutate", reviews.mutate),
                     "/validate": review_endpoint("validate", reviews.validate)}
    for path, answer in review_routes.items():
        app.add_url_rule(path, path.strip("/"), flask_view(answer), methods=["POST"])
    app.wsgi_app = ReviewRoutes(app.wsgi_app, review_routes)  # type: ignore[method-assign]
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
            answer = admission.answer_mutation(req, self.store, self.facts, warn_only=self.warn_only)
        except Exception:  # noqa: BLE001 - a bug must still give the API server an answer
            log.exception("mutation failed", extra={"uid": req["uid"]})
            try:  # without the advisory checks of a pod that skips /validate, as /validate would fail open
                answer = admission.answer_mutation(req, self.store, self.facts, self.warn_only, checks=False)
            except Exception:  # noqa: BLE001 - the mutation itself failed
                return answers.errored(
                    req["uid"], f"model-cache failed on this pod (a bug; see the webhook log for uid {req['uid']})")
            answer.warnings.append(CHECK_FAILED)
        self._record(req, answer)  # the warnings of a pod that skips /validate
        return answer

    def _record(self, req: dict[str, Any], answer: admission.Answer) -> None:
        if self.recorder is not None and answer.warnings and is_pod_create(req):
            self.recorder.record(req, answer.warnings)

    def validate(self, req: dict[str, Any]) -> admission.Answer:
        try:
            answer = admission.answer_validation(req, self.store, self.facts, warn_only=self.warn_only)
        except Exception:  # noqa: BLE001 - never fail a pod for a bug in an advisory check
            log.exception("validation failed", extra={"uid": req["uid"]})
            answer = answers.allowed(req["uid"], [CHECK_FAILED], result="error")
        self._record(req, answer)
        return answer


# A review read from a stream of a given length (None: chunked), as the HTTP status and body of the answer.
ReviewEndpoint = Callable[[body.Readable, "int | None"], "tuple[int, bytes]"]


def review_endpoint(endpoint: str, answer_of: Callable[[dict[str, Any]], admission.Answer]) -> ReviewEndpoint:
    """ENDPOINT: read the review, answer it, account for it."""

    def answer(stream: body.Readable, length: int | None) -> tuple[int, bytes]:
        started = time.perf_counter()
        req = body.read_review(stream, length)
        if isinstance(req, (body.Malformed, body.Incomplete)):
            reporting.refused(endpoint, req)
            refusal = answers.unreadable(req)
            # No review was read, so the HTTP status carries the error as well.
            return refusal.code or 400, answers.encode(refusal)
        reply = answer_of(req)
        reporting.answered(endpoint, reply, req, time.perf_counter() - started)
        return 200, answers.encode(reply)

    return answer


def flask_view(answer: ReviewEndpoint) -> Callable[[], Response]:
    """The same endpoint as a Flask view, for a request ReviewRoutes left to Flask."""

    def view() -> Response:
        status, payload = answer(request.stream, request.content_length)
        return Response(payload, status=status, mimetype=JSON)

    return view


class ReviewRoutes:
    """WSGI middleware: a POST to one of ROUTES is answered here, anything
    else by the Flask app it wraps. The stream and length are the ones Flask
    would have given the view (werkzeug's own functions)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], routes: dict[str, ReviewEndpoint]) -> None:
        self.app, self.routes = app, routes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = self.routes.get(environ.get("PATH_INFO", "")) if environ.get("REQUEST_METHOD") == "POST" else None
        if answer is None:
            return self.app(environ, start_response)
        try:
            status, payload = answer(get_input_stream(environ), get_content_length(environ))
        except Exception:  # noqa: BLE001 - as unexpected(): the API server still gets a review
            log.exception("unhandled error on %s", environ.get("PATH_INFO"))
            status, payload = 500, answers.encode(answers.errored("", "model-cache internal error; see the webhook log"))
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", JSON), ("Content-Length", str(len(payload)))])
        return [payload]


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
