"""webhook/validate/lookups.py with the real kubernetes client against the fake API
server over TLS: shapes, errors, time bounds, the cache."""

from __future__ import annotations

import base64
import gc
import logging
import threading
import time
import types
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

import pytest
from prometheus_client import REGISTRY

from tests.validate.cluster import make_provider
from tests.fakes import TOKEN, FakeApiServer
from webhook.validate import lookups as cluster
from webhook.facts.cluster import MISSING, NamespaceInfo, PvcInfo, SecretInfo, Unavailable
from webhook.validate.lookups import FactsProvider, LookupKey, Settings, load_configuration

PVC = LookupKey("pvc", "ml", "llm-models")
SECRET = LookupKey("secret", "ml", "hf-token")
NS = LookupKey("namespace", "ml", "ml")
GI = Decimal(2**30)


def eventually(fetch: Callable[[], object], done: Callable[[object], bool], seconds: float = 10) -> object:
    """FETCH's value once DONE says so; a bound, not a timing under test."""
    deadline = time.monotonic() + seconds
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fetch()
    assert done(value), value
    return value


def lookups(kind: str, result: str) -> float:
    """model_cache_cluster_lookups_total{kind,result}, as /metrics shows it."""
    return REGISTRY.get_sample_value("model_cache_cluster_lookups_total", {"kind": kind, "result": result}) or 0.0


def strings_reachable_from(root: object, limit: int = 200_000) -> Iterator[str]:
    """Every str and bytes (decoded) reachable from ROOT through object references,
    short of modules, classes and functions (code, not state)."""
    seen: set[int] = set()
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            yield bytes(obj).decode("latin-1")
        else:
            todo.extend(gc.get_referents(obj))


def test_reads_pvc_secret_and_namespace(healthy_cluster: FakeApiServer, provider: FactsProvider) -> None:
    healthy_cluster.add_namespace("ml", {"pod-security.kubernetes.io/enforce": "baseline"})
    facts = provider.gather([PVC, SECRET, NS])
    assert facts[PVC] == PvcInfo("llm-models", 100 * GI, 100 * GI, ("ReadWriteMany",), "Bound", False)
    assert facts[SECRET] == SecretInfo("hf-token", frozenset({"HF_TOKEN"}))
    assert isinstance(facts[NS], NamespaceInfo)
    assert facts[NS].labels["pod-security.kubernetes.io/enforce"] == "baseline"
    # The real client sent the kubeconfig's token (the fake answers 401 otherwise).
    assert {r.authorization for r in healthy_cluster.requests} == {f"Bearer {TOKEN}"}
    assert sorted(r.path for r in healthy_cluster.requests) == [
        "/api/v1/namespaces/ml", "/api/v1/namespaces/ml/persistentvolumeclaims/llm-models",
        "/api/v1/namespaces/ml/secrets/hf-token"]


def test_pending_pvc_uses_its_spec(apiserver: FakeApiServer, provider: FactsProvider) -> None:
    apiserver.add_pvc("ml", "llm-models", "18Gi", ("ReadWriteOnce",), phase="Pending")
    assert provider.gather([PVC])[PVC] == PvcInfo("llm-models", 18 * GI, None, ("ReadWriteOnce",), "Pending", False)


def test_terminating_pvc(apiserver: FakeApiServer, provider: FactsProvider) -> None:
    apiserver.add_pvc("ml", "llm-models", "100Gi", deleting=True)
    assert provider.gather([PVC])[PVC].deleting is True


def test_secret_values_are_not_kept(healthy_cluster: FakeApiServer, provider: FactsProvider,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fact = provider.gather([SECRET])[SECRET]
    assert fact == SecretInfo("hf-token", frozenset({"HF_TOKEN"}))
    # The API server sends the value base64-encoded: neither form may stay
    # anywhere the provider holds on to (its cache, its client, its threads).
    value = "hf_secret_value_never_logged"
    forms = (value, base64.b64encode(value.encode()).decode())
    reachable = list(strings_reachable_from(provider))
    assert any(TOKEN in s for s in reachable), "the walk must reach the client (it holds the token)"
    assert not [s for s in reachable if any(f in s for f in forms)]
    assert not any(f in caplog.text for f in forms)


def test_not_found_is_missing(apiserver: FakeApiServer, provider: FactsProvider) -> None:
    assert provider.gather([PVC, SECRET]) == {PVC: MISSING, SECRET: MISSING}


def test_forbidden_names_the_permission(apiserver: FakeApiServer, provider: FactsProvider) -> None:
    apiserver.add_pvc("ml", "llm-models", "100Gi")
    apiserver.forbid("/secrets/")
    facts = provider.gather([PVC, SECRET])
    assert isinstance(facts[PVC], PvcInfo)
    assert facts[SECRET] == Unavailable("403 forbidden", forbidden="secrets")


def test_server_errors_are_unavailable(apiserver: FakeApiServer, provider: FactsProvider) -> None:
    apiserver.fail("/persistentvolumeclaims/", 500)
    assert provider.gather([PVC])[PVC] == Unavailable("API server answered 500 Internal Server Error")


def test_wrong_token_is_unavailable(apiserver: FakeApiServer, tmp_path: Path) -> None:
    p = make_provider(apiserver.write_kubeconfig(tmp_path / "bad", token="expired"))
    try:
        assert p.gather([NS])[NS] == Unavailable("401 unauthorized", forbidden="namespaces")
    finally:
        p.close()


def test_slow_api_server_gives_up_within_the_budget(healthy_cluster: FakeApiServer, kubeconfig: Path) -> None:
    p = make_provider(kubeconfig, budget=0.3, http_timeout=5.0)
    try:
        assert isinstance(p.gather([SECRET], budget=5.0)[SECRET], SecretInfo)  # cached before the trouble
        healthy_cluster.slow("/persistentvolumeclaims/", 2.0)
        started = time.monotonic()
        facts = p.gather([PVC, SECRET])
        waited = time.monotonic() - started
        assert facts[PVC] == Unavailable("API server did not answer within 0.3s")
        assert facts[SECRET] == SecretInfo("hf-token", frozenset({"HF_TOKEN"}))  # what is known is still used
        assert waited < 1.5, waited  # no hang: the 2 s answer was not waited for
        # The GET went on in the background and filled the cache: the next reviews
        # wait on that one GET (never a second), then answer from the cache.
        eventually(lambda: p.gather([PVC])[PVC], lambda fact: isinstance(fact, PvcInfo))
        hits = lookups("pvc", "hit")
        assert isinstance(p.gather([PVC])[PVC], PvcInfo)
        assert lookups("pvc", "hit") == hits + 1
        assert healthy_cluster.count("persistentvolumeclaims") == 1
    finally:
        p.close()


def test_after_one_slow_answer_reviews_wait_less(healthy_cluster: FakeApiServer, kubeconfig: Path) -> None:
    healthy_cluster.slow("/persistentvolumeclaims/", 3.0)
    p = make_provider(kubeconfig, budget=0.5, http_timeout=5.0, breaker_seconds=30)
    try:
        assert p.gather([PVC])[PVC] == Unavailable("API server did not answer within 0.5s")
        other = LookupKey("pvc", "ml", "other-models")
        started = time.monotonic()
        assert p.gather([other])[other] == Unavailable("API server did not answer within 0.05s")
        assert time.monotonic() - started < 0.4
        # GETs still go out in slow mode and refill the cache for the next review.
        p.gather([SECRET])
        eventually(lambda: p.gather([SECRET])[SECRET], lambda fact: isinstance(fact, SecretInfo))
        assert healthy_cluster.count("/secrets/") == 1
    finally:
        p.close()


def test_hanging_api_server_opens_the_breaker(healthy_cluster: FakeApiServer, kubeconfig: Path) -> None:
    healthy_cluster.slow("/api/v1/", 30)  # accepts, never answers in time
    p = make_provider(kubeconfig, budget=0.2, http_timeout=0.3, breaker_seconds=30)
    try:
        errors = lookups("pvc", "error")
        first = p.gather([PVC])[PVC]
        assert first == Unavailable("API server did not answer within 0.2s")
        # The background GET times out (0.3 s, one retry) and counts as an error.
        eventually(lambda: lookups("pvc", "error"), lambda n: n == errors + 1)
        asked = healthy_cluster.count("/api/v1/")
        started = time.monotonic()
        facts = p.gather([SECRET, NS])
        assert time.monotonic() - started < 0.5  # answered at once, from the breaker (the server hangs 30 s)
        assert facts[SECRET] == facts[NS] == Unavailable("API server unreachable (timed out)")
        assert healthy_cluster.count("/api/v1/") == asked  # and nothing more was sent
    finally:
        p.close()


def test_dropped_connection_is_unavailable(healthy_cluster: FakeApiServer, provider: FactsProvider) -> None:
    healthy_cluster.drop("/persistentvolumeclaims/")
    assert provider.gather([PVC])[PVC] == Unavailable("API server unreachable (connection dropped)")
    assert healthy_cluster.count("persistentvolumeclaims") == 2  # one retry, then the breaker


def test_connection_dropped_mid_body_is_unavailable(healthy_cluster: FakeApiServer, provider: FactsProvider) -> None:
    healthy_cluster.truncate("/secrets/")
    fact = provider.gather([SECRET])[SECRET]
    assert isinstance(fact, Unavailable) and fact.reason.startswith("API server unreachable"), fact


def test_refused_connection_is_unavailable(tmp_path: Path) -> None:
    server = FakeApiServer(tmp_path / "gone")
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    server.close()  # nobody listens on its port any more
    p = make_provider(kubeconfig)
    try:
        fact = p.gather([PVC])[PVC]
        assert isinstance(fact, Unavailable) and fact.reason.startswith("API server unreachable")
    finally:
        p.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _provider_with_clock(kubeconfig: Path, clock: Clock, **settings: float) -> FactsProvider:
    configuration = load_configuration({"MODEL_CACHE_KUBECONFIG": str(kubeconfig)})
    assert configuration is not None
    return FactsProvider(configuration, Settings(**{"budget": 2.0, **settings}), clock=clock)  # type: ignore[arg-type]


def test_cache_ttl_and_negative_ttl(apiserver: FakeApiServer, kubeconfig: Path) -> None:
    clock = Clock()
    p = _provider_with_clock(kubeconfig, clock, ttl=30, missing_ttl=5)
    try:
        assert p.gather([PVC])[PVC] is MISSING
        apiserver.add_pvc("ml", "llm-models", "100Gi")
        clock.now += 4
        assert p.gather([PVC])[PVC] is MISSING  # the 404 is trusted for 5 s
        clock.now += 2
        assert isinstance(p.gather([PVC])[PVC], PvcInfo)  # the user created it: seen
        clock.now += 29
        p.gather([PVC])
        assert apiserver.count("persistentvolumeclaims") == 2
        clock.now += 2
        p.gather([PVC])
        assert apiserver.count("persistentvolumeclaims") == 3
    finally:
        p.close()


def test_stale_value_served_when_the_api_server_fails(apiserver: FakeApiServer, kubeconfig: Path) -> None:
    clock = Clock()
    p = _provider_with_clock(kubeconfig, clock, ttl=30, max_stale=300)
    try:
        apiserver.add_pvc("ml", "llm-models", "10Gi")
        assert isinstance(p.gather([PVC])[PVC], PvcInfo)
        apiserver.fail("/persistentvolumeclaims/", 503)
        clock.now += 31
        assert p.gather([PVC])[PVC].requested == 10 * GI  # a known size beats "could not check"
        clock.now += 300
        assert isinstance(p.gather([PVC])[PVC], Unavailable)  # too old to trust
    finally:
        p.close()


def test_one_fetch_for_concurrent_reviews(healthy_cluster: FakeApiServer, kubeconfig: Path) -> None:
    healthy_cluster.slow("/persistentvolumeclaims/", 0.2)
    p = make_provider(kubeconfig)
    try:
        results: list[object] = []
        threads = [threading.Thread(target=lambda: results.append(p.gather([PVC])[PVC])) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and all(isinstance(r, PvcInfo) for r in results)
        assert healthy_cluster.count("persistentvolumeclaims") == 1
    finally:
        p.close()


def test_load_configuration_choices(kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    assert load_configuration({}) is None
    assert load_configuration({"MODEL_CACHE_CLUSTER_CHECKS": "off", "MODEL_CACHE_KUBECONFIG": str(kubeconfig)}) is None
    cfg = load_configuration({"KUBECONFIG": str(kubeconfig)})
    assert cfg is not None and cfg.host.startswith("https://127.0.0.1:")
    assert cfg.retries.total == 1
    (tmp_path / "broken").write_text("clusters: [")
    assert load_configuration({"MODEL_CACHE_KUBECONFIG": str(tmp_path / "broken")}) is None


def test_settings_from_env() -> None:
    s = Settings.from_env({"MODEL_CACHE_FACTS_BUDGET": "0.25", "MODEL_CACHE_FACTS_TTL": "nonsense"})
    assert (s.budget, s.ttl) == (0.25, Settings().ttl)


def test_pvc_from_json_tolerates_odd_shapes() -> None:
    info = cluster.pvc_from_json({"metadata": {"name": "x"}, "spec": {"resources": {"requests": {"storage": "lots"}}}})
    assert info == PvcInfo("x", None, None, (), None, False)


def test_create_facts_provider_follows_the_environment(kubeconfig: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("MODEL_CACHE_KUBECONFIG", raising=False)
    assert cluster.create_facts_provider() is None
    monkeypatch.setenv("MODEL_CACHE_KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("MODEL_CACHE_FACTS_BUDGET", "0.25")
    provider = cluster.create_facts_provider()
    assert provider is not None
    try:
        assert provider.settings.budget == 0.25
        assert provider.gather([NS])[NS] is MISSING  # it really talks to the fake API server
    finally:
        provider.close()
