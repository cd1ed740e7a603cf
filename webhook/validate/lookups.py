"""What the validating rules need from the API server (PVCs, Secrets' key names,
a namespace's labels, its LimitRanges' and ResourceQuotas' memory bounds), through the real `kubernetes` client, cached, in bounded time.

Why GETs with a short TTL and not a watch: a watch on Secrets would stream every
Secret's values of the cluster into this process, and needs list/watch rights
the webhook has no use for. A GET by name reads one object; its key names are
kept, its values dropped at once. One round trip to the API server costs a few
milliseconds in-cluster, once per TTL per object.

Time bounds (the webhook's own timeoutSeconds is 5):
- `gather` waits at most `budget` (0.5 s) for all lookups of one review together;
  what is not back by then is reported `Unavailable`, never waited on longer.
- A lookup still running goes on in the background (up to `http_timeout`) and
  fills the cache for the next review; the same object is fetched once at a time.
- A transport failure (timeout, refused, dropped) opens a breaker for
  `breaker_seconds`: meanwhile lookups answer at once from the cache or as
  Unavailable, so an API server that is down costs no review any time at all.
- A review that gave up waiting puts the provider in slow mode for
  `breaker_seconds`: reviews then wait `slow_budget` (50 ms), not the whole
  budget, while GETs still go out to refill the cache. An overloaded API server
  thus costs a few reviews 0.5 s, not every review until the breaker opens.
- After an error a value fetched earlier (up to `max_stale` old) is served
  rather than none: a known PVC size beats "could not check".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter, Histogram

from webhook import kube
from webhook.validate.lookup_config import Settings, load_configuration
from webhook.facts.cluster import (
    MISSING,
    LookupKey,
    Unavailable,
    limits_from_json,
    namespace_from_json,
    pvc_from_json,
    secret_from_json,
)

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "model_cache_cluster_lookups_total",
    "Cluster facts asked for by /validate, by kind and result "
    "(hit, fetched, missing, stale, forbidden, error, timeout, breaker).",
    ["kind", "result"],
)
FETCH_SECONDS = Histogram(
    "model_cache_cluster_fetch_seconds",
    "Time of one GET to the API server, by kind.",
    ["kind"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# RBAC verbs and resources each lookup needs (docs/validation.md).
_RESOURCE: dict[str, tuple[str, str]] = {
    "pvc": ("get", "persistentvolumeclaims"), "secret": ("get", "secrets"), "namespace": ("get", "namespaces"),
    "limits": ("list", "limitranges, resourcequotas"),
}


# --- the provider ------------------------------------------------------------------


@dataclass
class _Entry:
    fact: Any
    fetched_at: float  # when FACT was read from the API server
    good_until: float  # not fetched again before this


class FactsProvider:
    """Cached, time-bounded cluster lookups. One per gunicorn worker; thread safe."""

    def __init__(self, configuration: k8s.Configuration, settings: Settings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.configuration = configuration
        self.settings = settings or Settings()
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[LookupKey, _Entry] = OrderedDict()
        self._inflight: dict[LookupKey, Future[Any]] = {}
        self._down_until = 0.0
        self._down_reason = ""
        self._slow_until = 0.0
        self._pid = -1
        self._pool: ThreadPoolExecutor | None = None
        self._api: k8s.CoreV1Api | None = None
        # The first CoreV1Api costs ~0.4 s (the client builds its request
        # validators): pay it when the worker starts, not in the first review.
        self._ensure_process()

    # Built per process: gunicorn may fork after creating the app, and neither
    # threads nor pooled TLS connections survive a fork.
    def _ensure_process(self) -> tuple[ThreadPoolExecutor, k8s.CoreV1Api]:
        if self._pid != os.getpid() or self._pool is None or self._api is None:
            self._pid = os.getpid()
            self._inflight = {}
            self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="model-cache-facts")
            self._api = k8s.CoreV1Api(kube.api_client(self.configuration))
        return self._pool, self._api

    def close(self) -> None:
        with self._lock:
            pool, api = self._pool, self._api
            self._pool = self._api = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if api is not None:
            api.api_client.close()

    def gather(self, keys: Iterable[LookupKey], budget: float | None = None) -> dict[LookupKey, Any]:
        """The facts for KEYS, each a PvcInfo/SecretInfo/NamespaceInfo, MISSING or
        Unavailable; within BUDGET seconds for all of them together."""
        budget = self.settings.budget if budget is None else budget
        started = self._clock()
        if started < self._slow_until:
            budget = min(budget, self.settings.slow_budget)
        results: dict[LookupKey, Any] = {}
        pending: dict[LookupKey, Future[Any]] = {}
        for key in dict.fromkeys(keys):
            fact, future = self._lookup(key)
            if future is None:
                results[key] = fact
            else:
                pending[key] = future
        if pending:
            remaining = max(0.0, budget - (self._clock() - started))
            wait(list(pending.values()), timeout=remaining)
            for key, future in pending.items():
                if future.done() and not future.cancelled():
                    results[key] = future.result()
                else:
                    LOOKUPS.labels(kind=key.kind, result="timeout").inc()
                    results[key] = self._stale_or(key, Unavailable(f"API server did not answer within {budget:g}s"))
                    self._slow_until = self._clock() + self.settings.breaker_seconds
        return results

    def _lookup(self, key: LookupKey) -> tuple[Any, Future[Any] | None]:
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and now < entry.good_until:
                LOOKUPS.labels(kind=key.kind, result="hit").inc()
                return entry.fact, None
            if now < self._down_until:
                LOOKUPS.labels(kind=key.kind, result="breaker").inc()
                return self._stale_locked(key, now, Unavailable(self._down_reason)), None
            future = self._inflight.get(key)
            if future is None:
                pool, api = self._ensure_process()
                future = pool.submit(self._fetch, api, key)
                self._inflight[key] = future
            return None, future

    def _stale_or(self, key: LookupKey, fallback: Unavailable) -> Any:
        with self._lock:
            return self._stale_locked(key, self._clock(), fallback)

    def _stale_locked(self, key: LookupKey, now: float, fallback: Unavailable) -> Any:
        entry = self._cache.get(key)
        if entry is not None and not isinstance(entry.fact, Unavailable) and now - entry.fetched_at <= self.settings.max_stale:
            LOOKUPS.labels(kind=key.kind, result="stale").inc()
            return entry.fact
        return fallback

    def _fetch(self, api: k8s.CoreV1Api, key: LookupKey) -> Any:
        """Runs in the pool: one GET, its result cached; never raises."""
        s = self.settings
        started = time.perf_counter()
        try:
            fact, ttl, result = self._get(api, key), s.ttl, "fetched"
            if fact is MISSING:
                ttl, result = s.missing_ttl, "missing"
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            failure = kube.read_failure(err)
            assert failure is not None  # read_failure knows every type caught here
            fact, ttl = _unavailable(key, failure), s.error_ttl
            result = "forbidden" if failure.kind in ("unauthorized", "forbidden") else "error"
            if failure.transport:
                self._open_breaker(fact.reason)
        except Exception as err:  # noqa: BLE001 - a background thread: a bug must become a warning, not a lost future
            log.exception("cluster lookup crashed: %s %s/%s", key.kind, key.namespace, key.name)
            fact, ttl, result = Unavailable(f"lookup failed ({type(err).__name__})"), s.error_ttl, "error"
        finally:
            FETCH_SECONDS.labels(kind=key.kind).observe(time.perf_counter() - started)
        LOOKUPS.labels(kind=key.kind, result=result).inc()
        now = self._clock()
        with self._lock:
            self._inflight.pop(key, None)
            if isinstance(fact, Unavailable):
                reported = self._stale_locked(key, now, fact)
                old = self._cache.get(key)
                if reported is not fact and old is not None:
                    self._store_locked(key, _Entry(old.fact, old.fetched_at, now + ttl))
                else:
                    self._store_locked(key, _Entry(fact, now, now + ttl))
                if result != "forbidden":
                    log.warning("cluster lookup failed: %s %s/%s: %s", key.kind, key.namespace, key.name, fact.reason)
                return reported
            self._store_locked(key, _Entry(fact, now, now + ttl))
            return fact

    def _get(self, api: k8s.CoreV1Api, key: LookupKey) -> Any:
        timeout = self.settings.http_timeout
        try:
            if key.kind == "pvc":
                resp = api.read_namespaced_persistent_volume_claim(
                    key.name, key.namespace, _preload_content=False, _request_timeout=timeout)
                return pvc_from_json(json.loads(resp.data))
            if key.kind == "secret":
                resp = api.read_namespaced_secret(key.name, key.namespace, _preload_content=False, _request_timeout=timeout)
                body = json.loads(resp.data)
                try:
                    return secret_from_json(body)
                finally:
                    del body  # the values: not kept a moment longer than needed
            if key.kind == "limits":  # lists, but of a handful of small objects per namespace
                ranges = api.list_namespaced_limit_range(key.namespace, _preload_content=False, _request_timeout=timeout)
                quotas = api.list_namespaced_resource_quota(key.namespace, _preload_content=False,
                                                            _request_timeout=timeout)
                return limits_from_json(json.loads(ranges.data), json.loads(quotas.data))
            resp = api.read_namespace(key.name, _preload_content=False, _request_timeout=timeout)
            return namespace_from_json(json.loads(resp.data))
        except ApiException as err:
            if err.status == 404:
                return MISSING
            raise

    def _open_breaker(self, reason: str) -> None:
        with self._lock:
            self._down_until = self._clock() + self.settings.breaker_seconds
            self._down_reason = reason

    def _store_locked(self, key: LookupKey, entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.settings.max_entries:
            self._cache.popitem(last=False)


def _unavailable(key: LookupKey, failure: kube.ApiFailure) -> Unavailable:
    if failure.kind in ("unauthorized", "forbidden"):
        verb, resource = _RESOURCE[key.kind]
        return Unavailable(f"{failure.status} {failure.kind}", forbidden=resource, verb=verb)
    if failure.kind == "tls":
        return Unavailable(f"API server {failure.reason}")
    if failure.kind == "unreachable":
        return Unavailable(f"API server unreachable ({failure.reason})")
    if failure.kind == "unreadable":
        return Unavailable("API server sent an unreadable answer")
    return Unavailable(f"API server answered {failure.status} {kube.first_line(failure.reason, 80)}")


def create_facts_provider(configuration: k8s.Configuration | None = None) -> FactsProvider | None:
    """Called once per worker when the app is created; None means no cluster lookups
    (no in-cluster config, MODEL_CACHE_KUBECONFIG, KUBECONFIG or ~/.kube/config):
    the checks that need the cluster are then skipped without a warning.
    CONFIGURATION: the one the caller chose (explain's --kubeconfig, --context)."""
    configuration = configuration or load_configuration()
    if configuration is None:
        return None
    settings = Settings.from_env()
    log.info("cluster checks on: %s (budget %gs, ttl %gs)", configuration.host, settings.budget, settings.ttl)
    return FactsProvider(configuration, settings)
