"""The Flask app: routes, metrics, logs. A thin shell over webhook.admission:
it reads the body, calls a pure handler, records the answer, writes it back."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from gunicorn.http.errors import ParseException as HttpParseError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.exceptions import ClientDisconnected

from webhook import admission
from webhook.admission.review import MAX_BODY_BYTES
from webhook.errors import MalformedReview
from webhook.policy import PolicyStore
from webhook.admission.handlers import is_pod_create
from webhook.server import metrics
from webhook.server.events import create_event_recorder
from webhook.validate.lookups import create_facts_provider

log = logging.getLogger("webhook.app")
JSON = "application/json"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    import json

    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype=JSON)


def _metrics_registries(certfile: str | None) -> list[CollectorRegistry]:
    """What /metrics renders: every worker's counters (summed through the
    multiprocess directory that serve sets up) plus certificate expiry."""
    from prometheus_client import REGISTRY

    from webhook.certs.expiry import CertificateCollector

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    registries = [counters]
    if certfile:
        # A registry of its own: create_app may run more than once in a process.
        expiry = CollectorRegistry()
        expiry.register(CertificateCollector(certfile))
        registries.append(expiry)
    return registries


# A client still sending when we answer 413 sees a reset instead of the answer;
# read and drop what a sane client sends, up to this much, before answering.
DRAIN_LIMIT = 16 * 1024 * 1024

# What reading a body raises when the client broke HTTP/1.1 framing (a chunk
# size that is not hex, a missing CRLF, a bad trailer): the client is still
# there and gets a 400. The server closes the connection after it, since where
# the next request would start is unknown (gunicorn marks the body failed).
BAD_FRAMING: tuple[type[Exception], ...] = (HttpParseError,)
# What it raises when the client went away or stalled mid-body: a reset, an
# EOF before the end (gunicorn's NoMoreData is an IOError), the worker's body
# deadline (a TimeoutError), werkzeug's ClientDisconnected under other servers.
CLIENT_GONE: tuple[type[Exception], ...] = (OSError, ClientDisconnected)


def _drain(stream: Any, length: int) -> None:
    remaining = min(length, DRAIN_LIMIT)
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, 256 * 1024))
            if not chunk:
                break
            remaining -= len(chunk)
    except BAD_FRAMING + CLIENT_GONE:
        pass  # the 413 is the answer either way; the connection closes after it


class IncompleteBody(Exception):
    """The client sent less body than it announced, or stopped sending."""


def _why_incomplete(err: Exception) -> str:
    if isinstance(err, (IncompleteBody, TimeoutError)) and str(err):
        return str(err)
    return f"connection closed mid-body ({type(err).__name__})"


def create_app(policies: Path | str, certfile: str | None = None, keyfile: str | None = None,
               warn_only: bool = False, events: bool = False, downloader_image: str | None = None) -> Flask:
    app = Flask("model-cache")
    store = PolicyStore(
        Path(policies),
        on_rejected=lambda name: metrics.POLICY_RELOAD_ERRORS.labels(file=name).inc(),
        on_invalid_count=metrics.POLICY_FILES_BAD.set,
        downloader_image=downloader_image,
    )
    facts = create_facts_provider()
    recorder = create_event_recorder(events)
    app.extensions["model_cache_store"] = store
    registries = _metrics_registries(certfile)

    def read_review(endpoint: str) -> tuple[dict[str, Any] | None, Response | None]:
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            _drain(request.environ["wsgi.input"], length)
            return None, _too_large(endpoint, length)
        try:
            body = read_body(length)
        except BAD_FRAMING as err:
            return None, _malformed(endpoint, f"request body is not valid HTTP/1.1 chunked encoding: {err}", "", 400)
        except (IncompleteBody, *CLIENT_GONE) as err:
            return None, _incomplete(endpoint, err)
        try:
            return admission.parse_review(body), None
        except MalformedReview as err:
            uid = admission.request_uid(body) if err.status == 400 else ""
            return None, _malformed(endpoint, str(err), uid, err.status)

    def read_body(length: int | None) -> bytes:
        # Chunked (no length): one byte past the cap tells that it was exceeded.
        wanted = MAX_BODY_BYTES + 1 if length is None else length
        body = request.stream.read(wanted)
        if length is not None and len(body) < length:
            raise IncompleteBody(f"{len(body)} of {length} bytes received")
        return body

    def _incomplete(endpoint: str, err: Exception) -> Response:
        """A client that went away or stalled mid-body: one quiet line, no
        traceback, not a malformed review; the answer, if it is still there."""
        reason = _why_incomplete(err)
        log.info("request body incomplete, client gone or too slow: %s", reason, extra={"endpoint": endpoint})
        return _json(admission.malformed_answer(f"request body incomplete: {reason}", "", 400), 400)

    def _too_large(endpoint: str, length: int) -> Response:
        return _malformed(endpoint, f"request body is {length} bytes; the limit is {MAX_BODY_BYTES}", "", 413)

    def _malformed(endpoint: str, reason: str, uid: str, status: int) -> Response:
        metrics.REVIEWS.labels(endpoint=endpoint, result="malformed", strategy="none").inc()
        log.warning("malformed review: %s", reason, extra={"uid": uid, "endpoint": endpoint})
        return _json(admission.malformed_answer(reason, uid, status), status)

    def finish(endpoint: str, answer: admission.Answer, req: dict[str, Any], started: float) -> Response:
        elapsed = time.perf_counter() - started
        metrics.LATENCY.labels(endpoint=endpoint).observe(elapsed)
        metrics.record(endpoint, answer)
        if answer.result != "skipped":
            obj = req.get("object") or {}
            log.info(
                "%s %s", endpoint, answer.result,
                extra={
                    "uid": answer.uid,
                    "namespace": req.get("namespace"),
                    "pod": (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get("generateName"),
                    "strategy": answer.strategy,
                    "reason": answer.message,
                    "warnings": answer.warnings or None,
                    "dryRun": bool(req.get("dryRun")),
                    "ms": round(elapsed * 1000, 3),
                },
            )
        return _json(answer.review())

    @app.post("/mutate")
    def mutate() -> Response:
        started = time.perf_counter()
        req, error = read_review("mutate")
        if error is not None:
            return error
        assert req is not None
        try:
            answer = admission.answer_mutation(req, store, facts, warn_only=warn_only)
        except Exception:  # noqa: BLE001 - a bug must still give the API server an answer
            log.exception("mutation failed", extra={"uid": req["uid"]})
            answer = admission.Answer(
                uid=req["uid"], allowed=False, code=500, result="error",
                message=f"model-cache failed on this pod (a bug; see the webhook log for uid {req['uid']})",
            )
        return finish("mutate", answer, req, started)

    @app.post("/validate")
    def validate() -> Response:
        started = time.perf_counter()
        req, error = read_review("validate")
        if error is not None:
            return error
        assert req is not None
        try:
            answer = admission.answer_validation(req, store, facts, warn_only=warn_only)
        except Exception:  # noqa: BLE001 - never fail a pod for a bug in an advisory check
            log.exception("validation failed", extra={"uid": req["uid"]})
            answer = admission.Answer(uid=req["uid"], result="error",
                                      warnings=["model-cache could not check this pod (webhook error; see its log)"])
        if recorder is not None and answer.warnings and is_pod_create(req):
            recorder.record(req, answer.warnings)
        return finish("validate", answer, req, started)

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        from werkzeug.exceptions import HTTPException

        if isinstance(err, HTTPException):  # 404, 405: Flask's own answer is right
            return err  # type: ignore[return-value]
        log.exception("unhandled error on %s", request.path)
        return _json(admission.malformed_answer("model-cache internal error; see the webhook log", "", 500), 500)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        store.maybe_reload()
        ok, detail = store.readiness()
        problems = [] if ok else [detail]
        for path in (certfile, keyfile):
            if path and not os.path.exists(path):
                problems.append(f"certificate file {path} is missing")
        if problems:
            return Response("not ready: " + "; ".join(problems) + "\n", status=503, mimetype="text/plain")
        return Response(f"ready: {detail}\n", mimetype="text/plain")

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(b"".join(generate_latest(r) for r in registries), mimetype=CONTENT_TYPE_LATEST)

    return app
