"""Warnings about controller-made pods, also where people look: an Event on the
pod's controller (the ReplicaSet of a Deployment, a Job, a StatefulSet).

A Deployment's replicas are created by the ReplicaSet controller, whose
admission warnings nobody reads; `kubectl describe rs` and `kubectl get
events` are where a model team looks when a rollout misbehaves. The template
was checked when the Deployment was applied, but the cluster changes after:
a PVC shrinks or goes, a Secret loses a key.

Who writes them: /validate for the pods it is sent, /mutate for the pods
of ReplicaSets, StatefulSets, DaemonSets and Jobs, which skip /validate
(their workload was checked at apply time; docs/validation.md).
Side effects and admission: both pod webhooks declare
`sideEffects: NoneOnDryRun`, and no Event is written for a dry-run request.
Events go out from a bounded queue on one background thread, never on the
request path; the same warning about the same controller is written at most
once per `ttl` seconds, so a 100-replica rollout writes one Event, not 100:
each process skips what it wrote already, and across processes (gunicorn
workers, webhook replicas) the Event's name is the same, so a second create
is refused as AlreadyExists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import queue
import socket
import threading
import time
from typing import Any, Mapping

from kubernetes import client

from webhook import kube
from webhook.errors import KubeConfigError

log = logging.getLogger(__name__)

REASON = "ModelCacheWarning"
CONTROLLER = "model.cache/webhook"
MAX_NOTE = 1024  # the API server refuses a longer note


def controller_of(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference of POD that is its controller, if any."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return ref
    return None


def event_name(owner: Mapping[str, Any], warning: str, now: dt.datetime, ttl: float) -> str:
    """The same for one warning about one controller within a TTL window, in
    every process: a second worker's or replica's create of it gets 409, so
    a rollout writes one Event however many webhook processes see its pods."""
    window = int(now.timestamp() // ttl)
    digest = hashlib.sha256(f"{owner.get('uid') or owner['name']}\n{warning}\n{window}".encode()).hexdigest()[:16]
    return f"{str(owner['name'])[:200]}.{digest}"


def event_for(namespace: str, owner: Mapping[str, Any], pod_name: str, warning: str, now: dt.datetime,
              instance: str, ttl: float = 600.0) -> dict[str, Any]:
    """An events.k8s.io/v1 Event about OWNER carrying one warning. Pure."""
    note = f"{warning} (pod {pod_name})"
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": event_name(owner, warning, now, ttl), "namespace": namespace},
        "eventTime": now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": CONTROLLER,
        "reportingInstance": instance[:128],
        "action": "Admit",
        "reason": REASON,
        "type": "Warning",
        "regarding": {k: v for k, v in {
            "apiVersion": owner.get("apiVersion"), "kind": owner["kind"], "name": owner["name"],
            "namespace": namespace, "uid": owner.get("uid")}.items() if v},
        "note": note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 3] + "...",
    }


class EventRecorder:
    """Writes Events in the background; `record` never blocks a review."""

    def __init__(self, configuration: client.Configuration, ttl: float = 600.0, max_queue: int = 256) -> None:
        self.configuration = configuration
        self.ttl = ttl
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._recent: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()
        self._thread: threading.Thread | None = None
        self._pid = -1

    def record(self, request: Mapping[str, Any], warnings: list[str]) -> int:
        """Queues an Event per new warning about the controller of the pod in
        REQUEST (a Pod CREATE, not a dry run); returns how many were queued."""
        pod = request.get("object") or {}
        owner = controller_of(pod)
        if not warnings or owner is None or request.get("dryRun"):
            return 0
        namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default"
        meta = pod.get("metadata") or {}
        pod_name = meta.get("name") or (meta.get("generateName") or "") + "*"
        now = time.monotonic()
        queued = 0
        for warning in warnings:
            key = (namespace, str(owner.get("uid") or owner["name"]), warning)
            with self._lock:
                if now < self._recent.get(key, 0.0):
                    continue
                self._recent[key] = now + self.ttl
                if len(self._recent) > 4096:
                    self._recent = {k: t for k, t in self._recent.items() if t > now}
            try:
                self._queue.put_nowait(event_for(namespace, owner, pod_name, warning,
                                                 dt.datetime.now(dt.timezone.utc), self._instance, self.ttl))
                queued += 1
            except queue.Full:
                log.warning("event queue full: dropped an Event about %s %s", owner["kind"], owner["name"])
        if queued:
            self._ensure_thread()
        return queued

    def _ensure_thread(self) -> None:
        # Per process: gunicorn forks workers after the app may have been created.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="model-cache-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        api = client.EventsV1Api(kube.api_client(self.configuration))
        while True:
            event = self._queue.get()
            try:
                api.create_namespaced_event(event["metadata"]["namespace"], event, _request_timeout=(2.0, 5.0))
            except Exception as err:  # noqa: BLE001 - a background thread: logged, never raised
                _log_failure(event, kube.read_failure(err))
            finally:
                self._queue.task_done()


def _log_failure(event: dict[str, Any], failure: kube.ApiFailure | None) -> None:
    if failure is None:
        log.exception("writing an Event failed")
        return
    if failure.kind == "conflict":  # another process wrote this very Event: done
        return
    hint = " (RBAC: create events.events.k8s.io)" if failure.kind == "forbidden" else ""
    log.warning("Event about %s %s not written: %s %s%s", event["regarding"]["kind"], event["regarding"]["name"],
                failure.status or "", failure.message, hint)


def create_event_recorder(enabled: bool) -> EventRecorder | None:
    """A recorder when ENABLED and a kube configuration is found, else None."""
    if not enabled:
        return None
    try:
        configuration = kube.load_configuration()
    except KubeConfigError as err:  # a broken kubeconfig must not stop the webhook
        log.error("events off: %s", err)
        return None
    return EventRecorder(configuration) if configuration is not None else None
