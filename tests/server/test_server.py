"""`model-cache serve` as a process, spoken to over TLS as the API server does."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import (GOLDEN, MODEL_CACHE, POLICIES, SERVICE_DNS_NAME, TLSClient, apply_response,
                           assert_schema_valid, golden_pod, pod_review)
from tests.server_process import RunningServer, start_server, stop_server
from webhook import strategies


@pytest.fixture()
def client(server: RunningServer):
    c = TLSClient(server.port, server.cafile)
    yield c
    c.close()


VARIANTS = GOLDEN / "policies"  # cases with a policy of their own, <case>.policy.yaml


def golden_cases_of(strategy: str, directory: Path = GOLDEN) -> list[str]:
    """The cases of DIRECTORY whose pod the webhook gives STRATEGY."""
    return [p.name.removesuffix(".out.yaml") for p in sorted(directory.glob("*.out.yaml"))
            if injected_strategy(yaml.safe_load(p.read_text())) == strategy]


def injected_strategy(pod: dict) -> str:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get("model.cache/injected", "").split("/")[0]


@pytest.fixture(scope="module")
def variants_client(tmp_path_factory: pytest.TempPathFactory):
    """A server of the policies of tests/golden/policies/, each serving its case's
    namespace: a strategy's golden needs no example policy."""
    tmp = tmp_path_factory.mktemp("variants")
    (tmp / "policies").mkdir()
    for own in sorted(VARIANTS.glob("*.policy.yaml")):
        namespace = yaml.safe_load(own.with_name(own.name.replace(".policy.", ".in.")).read_text())["metadata"]["namespace"]
        target = tmp / "policies" / f"{namespace}.yaml"
        assert not target.exists(), f"two cases of {VARIANTS} use namespace {namespace}: give each its own"
        shutil.copy(own, target)
    running = start_server(tmp, tmp / "policies")
    c = TLSClient(running.port, running.cafile)
    yield c
    c.close()
    stop_server(running)


@pytest.mark.parametrize("strategy", strategies.names())
def test_every_strategy_over_tls_gives_a_patch_that_applies(client: TLSClient, variants_client: TLSClient,
                                                            strategy: str) -> None:
    cases = [(client, GOLDEN, c) for c in golden_cases_of(strategy)]
    cases += [(variants_client if (VARIANTS / f"{c}.policy.yaml").exists() else client, VARIANTS, c)
              for c in golden_cases_of(strategy, VARIANTS)]
    assert cases, (f"tests/golden has no case for strategy {strategy}: add tests/golden/policies/<case>.in.yaml, "
                   "<case>.policy.yaml and <case>.out.yaml (UPDATE_GOLDEN=1 writes it)")
    for client, directory, case in cases:
        pod = yaml.safe_load((directory / f"{case}.in.yaml").read_text())
        review = pod_review(pod, uid=f"uid-{case}")
        status, answer = client.post_json("/mutate", review)
        assert status == 200
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        response = answer["response"]
        assert response["uid"] == f"uid-{case}" and response["allowed"] is True
        mutated = apply_response(pod, answer)
        assert injected_strategy(mutated) == strategy
        assert mutated == yaml.safe_load((directory / f"{case}.out.yaml").read_text()), case
        assert_schema_valid(mutated)
        # Idempotence: the API server may send the mutated pod again (reinvocation).
        _, again = client.post_json("/mutate", pod_review(mutated))
        assert again["response"]["allowed"] is True and "patch" not in again["response"]


def test_certificate_is_verified_for_the_service_name(server: RunningServer) -> None:
    TLSClient(server.port, server.cafile, server_name=SERVICE_DNS_NAME).close()
    with pytest.raises(ssl.SSLCertVerificationError):
        TLSClient(server.port, server.cafile, server_name="other.example.com")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused_by_the_server_and_1_2_accepted(server: RunningServer) -> None:
    ctx12 = ssl.create_default_context(cafile=str(server.cafile))
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx12.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"
    ctx = ssl.create_default_context(cafile=str(server.cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        # The alert comes from the server: the client offered TLS 1.0/1.1 and was refused.
        with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
            ctx.wrap_socket(raw, server_hostname="localhost")


def test_keep_alive_serves_many_reviews_on_one_connection(client: TLSClient) -> None:
    sock_before = client.conn.sock
    for i in range(20):
        status, answer = client.post_json("/mutate", pod_review(golden_pod("vllm-gpu-pvc"), uid=f"k{i}"))
        assert status == 200 and answer["response"]["uid"] == f"k{i}"
    assert client.conn.sock is sock_before


def test_denial_is_a_403_answer_with_the_reason(client: TLSClient) -> None:
    pod = golden_pod("vllm-gpu-pvc")
    pod["metadata"]["annotations"]["model.cache/name"] = "gpt-5"
    status, answer = client.post_json("/mutate", pod_review(pod, uid="deny-1"))
    assert status == 200
    r = answer["response"]
    assert r["allowed"] is False and r["uid"] == "deny-1" and r["status"]["code"] == 403
    assert 'model "gpt-5" is not in the model-cache policy for namespace llm' in r["status"]["message"]


def test_pod_without_annotation_and_non_create_pass_untouched(client: TLSClient) -> None:
    pod = golden_pod("vllm-gpu-pvc")
    del pod["metadata"]["annotations"]
    _, answer = client.post_json("/mutate", pod_review(pod))
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    annotated = golden_pod("vllm-gpu-pvc")
    for review in (pod_review(annotated, operation="UPDATE"), pod_review(annotated, subResource="status")):
        _, answer = client.post_json("/mutate", review)
        assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


def test_dry_run_gives_the_same_patch(client: TLSClient) -> None:
    pod = golden_pod("vllm-gpu-pvc")
    _, normal = client.post_json("/mutate", pod_review(pod, uid="a"))
    _, dry = client.post_json("/mutate", pod_review(pod, uid="a", dryRun=True))
    assert normal["response"]["patch"] == dry["response"]["patch"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "body is not JSON"),
        (b"", 400, "body is not JSON"),
        (b"[1, 2]", 400, "not a JSON object"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}).encode(), 400, "set admissionReviewVersions: [v1]"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), 400, "has no request"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {"kind": "Pod"}}}).encode(), 400, "request.uid: required field is missing"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u9", "kind": {"kind": "Pod"}, "operation": "CREATE"}}).encode(), 400, "a CREATE request must carry an object"),
    ],
)
@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_malformed_reviews_get_a_well_formed_4xx(client: TLSClient, path: str, body: bytes, status: int, reason: str) -> None:
    got_status, data, headers = client.request("POST", path, body)
    assert got_status == status
    answer = json.loads(data)
    assert answer["kind"] == "AdmissionReview" and answer["response"]["allowed"] is False
    assert reason in answer["response"]["status"]["message"]
    if b'"uid": "u9"' in body:
        assert answer["response"]["uid"] == "u9"


def test_body_over_3_mib_gets_413_and_the_worker_survives(server: RunningServer) -> None:
    client = TLSClient(server.port, server.cafile)
    pod = golden_pod("vllm-gpu-pvc")
    pod["metadata"]["annotations"]["padding"] = "x" * (3 * 1024 * 1024 + 10)
    status, data, _ = client.request("POST", "/mutate", json.dumps(pod_review(pod)).encode())
    assert status == 413
    assert "limit is 3145728" in json.loads(data)["response"]["status"]["message"]
    client.close()
    fresh = TLSClient(server.port, server.cafile)
    status, _ = fresh.post_json("/mutate", pod_review(golden_pod("vllm-gpu-pvc")))
    assert status == 200
    fresh.close()


def test_health_ready_and_metrics(client: TLSClient) -> None:
    assert client.request("GET", "/healthz")[0] == 200
    status, body, _ = client.request("GET", "/readyz")
    assert status == 200 and b"4 policy file(s) loaded" in body
    client.post_json("/mutate", pod_review(golden_pod("kserve-memory")))
    status, body, headers = client.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'model_cache_reviews_total{endpoint="mutate",result="mutated",strategy="memory"}' in text
    assert "model_cache_review_seconds_bucket" in text
    assert 'model_cache_certificate_expiry_timestamp_seconds{certificate="serving"}' in text


def test_logs_are_json_with_the_review_uid(server: RunningServer, client: TLSClient) -> None:
    client.post_json("/mutate", pod_review(golden_pod("vllm-gpu-pvc"), uid="log-uid-42"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(l) for l in server.log_text().splitlines() if l.startswith("{")]
        hits = [l for l in lines if l.get("uid") == "log-uid-42"]
        if hits:
            assert hits[0]["strategy"] == "pvc" and hits[0]["namespace"] == "llm"
            return
        time.sleep(0.1)
    pytest.fail("no JSON log line carries the review uid")


def test_bad_policy_edit_keeps_serving_and_shows_in_readyz_and_metrics(tmp_path: Path, server: RunningServer) -> None:

    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    srv = start_server(tmp_path, policies, workers=1)
    try:
        (policies / "llm.yaml").write_text((policies / "llm.yaml").read_text().replace("size: 16Gi", "size: sixteen"))
        c = TLSClient(srv.port, srv.cafile)
        deadline = time.monotonic() + 10
        while True:
            status, body, _ = c.request("GET", "/readyz")
            if b"last good version kept" in body or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status == 200 and b"llm.yaml: models.llama-3-8b.size" in body
        _, answer = c.post_json("/mutate", pod_review(golden_pod("vllm-gpu-pvc")))
        assert answer["response"]["allowed"] is True and "patch" in answer["response"]
        _, metrics, _ = c.request("GET", "/metrics")
        assert 'model_cache_policy_reload_errors_total{file="llm.yaml"}' in metrics.decode()
        c.close()
    finally:
        stop_server(srv)


def test_serve_without_certificate_says_how_to_make_one(tmp_path: Path) -> None:
    import subprocess


    result = subprocess.run([MODEL_CACHE, "serve", "--cert", str(tmp_path / "nope.crt"), "--key", str(tmp_path / "nope.key")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2  # a usage error (docs/cli.md, Exit codes): a file named on the command line is missing
    assert "model-cache certs generate" in result.stderr and "Traceback" not in result.stderr


def test_chunked_body_over_the_cap_gets_413(server: RunningServer) -> None:
    client = TLSClient(server.port, server.cafile)
    chunk = b"x" * (1024 * 1024)
    client.conn.putrequest("POST", "/mutate")
    client.conn.putheader("Transfer-Encoding", "chunked")
    client.conn.putheader("Content-Type", "application/json")
    client.conn.endheaders()
    for _ in range(4):
        client.conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    client.conn.send(b"0\r\n\r\n")
    resp = client.conn.getresponse()
    assert resp.status == 413
    assert "the limit is 3145728" in json.loads(resp.read())["response"]["status"]["message"]
    client.close()
