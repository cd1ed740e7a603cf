"""`model-cache serve`: the Flask app under gunicorn, over TLS.

gevent workers (worker.py): the API server keeps HTTP/1.1 connections alive so
that each request does not pay a TLS handshake, and idle, slow or hostile
connections must not take the server's capacity away from it. A greenlet per
connection makes an idle connection cost memory, not a thread; worker.py
bounds how long each kind of wait may last. `--worker-class gthread` (when the
command line passes one) gives the previous thread-per-request worker.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from webhook.errors import ServeError


WORKER = "webhook.server.worker.ModelCacheWorker"
LOGGER = "webhook.server.gunicorn.NoAccessLog"
# Per worker process; 2 workers take 2,000 connections at once. An idle one
# costs a greenlet and a TLS session, 30-70 KiB (docs/benchmarks.md).
WORKER_CONNECTIONS = 1000


class NoAccessLog(Logger):  # type: ignore[misc]
    """gunicorn's logger without its access log. gunicorn counts a
    logconfig_dict as asking for one, and builds each request's log atoms
    (about 3% of a review's CPU, docs/benchmarks.md) for a logger
    (gunicorn.access, logs.py) that drops them: an answered review has a line
    of its own from the app instead."""

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


def worker_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The worker class and its concurrency. `threads` only means something
    to gthread; serve options the command line may lack get their defaults."""
    worker_class = getattr(args, "worker_class", None) or "gevent"
    if worker_class == "gthread":
        return {"worker_class": "gthread", "threads": getattr(args, "threads", None) or 8}
    if worker_class != "gevent":
        raise ServeError(f"--worker-class {worker_class}: use gevent (the default) or gthread")
    return {"worker_class": WORKER,
            "worker_connections": getattr(args, "worker_connections", None) or WORKER_CONNECTIONS}


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    from webhook.certs import manager as cert_manager
    from webhook.server import tls
    from webhook.logs import logging_config

    def when_ready(server: Any) -> None:
        cert_manager.start_background(args)

    def child_exit(server: Any, worker: Any) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid)

    return {
        "bind": [f"{args.host}:{args.port}"],
        "workers": args.workers,
        **worker_settings(args),
        "certfile": args.cert,
        "keyfile": args.key,
        "ssl_context": tls.gunicorn_ssl_context,
        # Longer than the API server's 90 s idle timeout is pointless; shorter
        # than it forces new handshakes. 75 s mirrors common load balancers.
        "keepalive": 75,
        "timeout": 30,
        "graceful_timeout": 20,
        "accesslog": None,
        "logger_class": LOGGER,
        "logconfig_dict": logging_config(args.log_level),
        "loglevel": args.log_level,
        "when_ready": when_ready,
        "child_exit": child_exit,
        "proc_name": "model-cache",
        # gunicorn 27's control socket lives under $HOME, which is read-only in
        # the cluster and shared by parallel local servers; nothing uses it.
        "control_socket_disable": True,
        "forwarded_allow_ips": "",
    }


def serve(args: argparse.Namespace) -> int:
    from webhook.certs import manager as cert_manager

    worker_settings(args)  # a bad worker class fails here, before any certificate work
    cert_manager.prepare(args)
    for path, what in ((args.cert, "certificate"), (args.key, "key")):
        if not os.path.exists(path):
            raise ServeError(
                f"serving {what} {path} not found; run `model-cache certs generate --out {Path(path).parent}` "
                "or pass --cert/--key"
            )
    if not Path(args.policies).is_dir():
        raise ServeError(f"policy directory {args.policies} not found; pass --policies DIR")
    # Metrics from every worker are summed through files in this directory.
    metrics_dir = tempfile.mkdtemp(prefix="model-cache-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _Server(args).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _make_application() -> Any:
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):  # type: ignore[misc]
        def __init__(self, args: argparse.Namespace) -> None:
            self.args = args
            super().__init__()

        def load_config(self) -> None:
            for key, value in gunicorn_options(self.args).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from webhook.server.app import create_app

            return create_app(self.args.policies, certfile=self.args.cert, keyfile=self.args.key,
                              warn_only=self.args.warn_only, events=self.args.events,
                              downloader_image=self.args.downloader_image)

    return Application


def _Server(args: argparse.Namespace) -> Any:  # noqa: N802 - reads like a class at the call site
    sys.argv = [sys.argv[0]]  # gunicorn parses sys.argv too; ours are already parsed
    return _make_application()(args)
