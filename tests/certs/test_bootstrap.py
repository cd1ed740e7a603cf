"""The Secret and caBundle bootstrap with the real kubernetes client against
the fake API server of tests/fakes:
create, the 409 of a lost race, a conflicting update, caBundle drift, and
errors that name the fix."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import config

from tests.fakes import FakeApiServer
from tests.helpers import SERVICE_DNS_NAME, WEBHOOKS_MANIFEST
from webhook.certs import manager as cert_manager, x509 as certs
from webhook.errors import CertConfigError, KubeAccessError
from webhook.certs.api import WebhookConfigRef
from webhook.certs.manager import Reconciler, Settings
from webhook.certs.rotation import Action, Facts, RotationPolicy, apply, new_state
from webhook.certs.secret import build_secret, state_from_secret

NS, SECRET = "model-cache", "model-cache-tls"
CONFIGS = (WebhookConfigRef("mutating", "model-cache"), WebhookConfigRef("validating", "model-cache"))
MUT, VAL = "mutatingwebhookconfigurations", "validatingwebhookconfigurations"
# What a `kubectl replace` of the manifests does to the first webhook's trust.
BLANK_FIRST_BUNDLE = [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]
# Every webhook of both configurations in the manifests (1 mutating, 3 validating).
HOOKS = sum(len(d["webhooks"]) for d in yaml.safe_load_all(WEBHOOKS_MANIFEST.read_text()) if d)


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer() as f:
        f.seed_manifests(WEBHOOKS_MANIFEST)
        yield f


@pytest.fixture
def kubeconfig(fake: FakeApiServer, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig")


def settings(tmp_path: Path, policy: RotationPolicy | None = None) -> Settings:
    d = tmp_path / "tls"
    return Settings(secret=SECRET, namespace=NS, service="model-cache", configs=CONFIGS,
                    cert_file=d / "tls.crt", key_file=d / "tls.key", ca_file=d / "ca.crt",
                    interval=0.05, policy=policy or RotationPolicy())


def reconciler(kubeconfig: Path, tmp_path: Path, policy: RotationPolicy | None = None) -> Reconciler:
    return Reconciler(settings(tmp_path, policy), config.new_client_from_config(config_file=str(kubeconfig)))


def bundles(fake: FakeApiServer) -> list[str | None]:
    out = []
    for resource in (MUT, VAL):
        for hook in fake.get(resource, "model-cache")["webhooks"]:
            out.append(hook["clientConfig"].get("caBundle"))
    return out


def secret_state(fake: FakeApiServer) -> Any:
    return state_from_secret(fake.get("secrets", SECRET, NS))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_first_replica_creates_the_secret_patches_both_configurations_and_writes_files(
        fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    rec = reconciler(kubeconfig, tmp_path)
    result = rec.run_once()

    assert result.created and not result.lost_create_race
    secret = fake.get("secrets", SECRET, NS)
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "model-cache"
    state = state_from_secret(secret)
    assert set(certs.dns_names(state.serving.cert)) >= {SERVICE_DNS_NAME}
    # Every webhook of both configurations trusts the bundle.
    assert HOOKS == 4
    assert bundles(fake) == [b64(state.bundle_pem)] * HOOKS
    assert (tmp_path / "tls" / "tls.crt").read_bytes() == state.serving.cert_pem
    assert (tmp_path / "tls" / "tls.key").read_bytes() == state.serving.key_pem
    assert (tmp_path / "tls" / "ca.crt").read_bytes() == state.bundle_pem
    assert fake.count("/secrets$", "POST") == 1

    # A second pass finds everything in place and changes nothing.
    again = rec.run_once()
    assert not again.created and again.actions == [] and again.patched == [] and not again.files_written
    assert fake.count(method="PATCH") == 2 and fake.count(method="PUT") == 0


def test_a_replica_that_loses_the_create_race_serves_the_winners_certificate(
        fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    winner = new_state(tuple(certs.service_dns_names("model-cache", NS)),
                       dt.datetime.now(dt.timezone.utc), RotationPolicy())

    def other_replica_creates_first(method: str, path: str) -> None:
        if method == "POST" and fake.get("secrets", SECRET, NS) is None:
            fake.put("secrets", build_secret(SECRET, NS, winner), NS)

    fake.before = other_replica_creates_first
    result = reconciler(kubeconfig, tmp_path).run_once()

    assert result.lost_create_race and not result.created
    assert secret_state(fake) == winner, "the winner's Secret must stay as it is"
    assert (tmp_path / "tls" / "tls.crt").read_bytes() == winner.serving.cert_pem
    assert bundles(fake) == [b64(winner.bundle_pem)] * HOOKS
    assert fake.count(method="PUT") == 0


def test_two_replicas_renewing_at_once_agree_on_one_certificate(
        fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    """An update carries the resourceVersion it read; the replica whose write
    comes second gets 409, reads the other's renewal, and keeps it."""
    policy = RotationPolicy()
    names = tuple(certs.service_dns_names("model-cache", NS))
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=80)
    fake.put("secrets", build_secret(SECRET, NS, new_state(names, old, policy)), NS)
    now = dt.datetime.now(dt.timezone.utc)
    theirs = apply(secret_state(fake), Action.RENEW_SERVING, Facts(now, names, True, policy))

    def other_replica_renews_first(method: str, path: str) -> None:
        if method == "PUT" and secret_state(fake).serving != theirs.serving:
            cur = fake.get("secrets", SECRET, NS)
            fake.put("secrets", build_secret(SECRET, NS, theirs, cur["metadata"]["resourceVersion"]), NS)

    fake.before = other_replica_renews_first
    result = reconciler(kubeconfig, tmp_path).run_once()

    assert secret_state(fake).serving == theirs.serving
    assert (tmp_path / "tls" / "tls.crt").read_bytes() == theirs.serving.cert_pem
    assert result.actions == []  # our renewal lost; theirs needed nothing more
    assert fake.count(method="PUT") == 1


def test_a_reset_cabundle_is_patched_again(fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    rec = reconciler(kubeconfig, tmp_path)
    rec.run_once()
    want = bundles(fake)[0]
    # What a `kubectl replace` of the manifests, or another injector, does.
    fake.edit(MUT, "model-cache", BLANK_FIRST_BUNDLE)
    fake.edit(VAL, "model-cache", [{"op": "replace", "path": "/webhooks/1/clientConfig/caBundle",
                                    "value": b64(certs.make_ca().cert_pem)}])

    result = rec.run_once()
    assert sorted(result.patched) == ["MutatingWebhookConfiguration model-cache",
                                      "ValidatingWebhookConfiguration model-cache"]
    assert bundles(fake) == [want] * HOOKS
    # The untouched webhook was left alone: only the drifted paths were patched.
    assert fake.count(method="PATCH") == 4


def test_ca_roll_over_through_the_api(fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    policy = RotationPolicy(ca_validity=dt.timedelta(days=400), ca_renew_before=dt.timedelta(days=100))
    rec = reconciler(kubeconfig, tmp_path, policy)
    t0 = dt.datetime.now(dt.timezone.utc)
    rec.run_once(now=t0)
    first = secret_state(fake)

    stage_at = certs.not_after(first.ca.cert) - dt.timedelta(days=99)
    result = rec.run_once(now=stage_at)
    staged = secret_state(fake)
    assert Action.STAGE_CA in result.actions
    assert staged.next_ca is not None and staged.ca == first.ca
    # The new CA is in every caBundle before anything it signs is served.
    assert bundles(fake) == [b64(staged.bundle_pem)] * HOOKS
    assert certs.is_signed_by(certs.load_cert((tmp_path / "tls" / "tls.crt").read_bytes()), first.ca.cert)

    # Just before the promotion, something blanks a caBundle: the pass that
    # patches it back must not promote (the API servers may not have it yet).
    fake.edit(MUT, "model-cache", BLANK_FIRST_BUNDLE)
    due = stage_at + policy.promote_after + dt.timedelta(seconds=1)
    result = rec.run_once(now=due)
    assert result.patched == ["MutatingWebhookConfiguration model-cache"]
    assert Action.PROMOTE_CA not in result.actions and secret_state(fake).ca == first.ca

    result = rec.run_once(now=due + dt.timedelta(seconds=30))
    promoted = secret_state(fake)
    assert Action.PROMOTE_CA in result.actions
    assert promoted.ca == staged.next_ca
    served = certs.load_cert((tmp_path / "tls" / "tls.crt").read_bytes())
    assert certs.is_signed_by(served, staged.next_ca.cert)
    assert bundles(fake) == [b64(staged.bundle_pem)] * HOOKS  # the old CA stays trusted


def test_missing_configurations_do_not_stop_the_start_but_block_a_promotion(
        fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    fake.delete(VAL, "model-cache")
    result = reconciler(kubeconfig, tmp_path).run_once()
    assert result.created and result.missing_configs == ["ValidatingWebhookConfiguration model-cache"]
    assert (tmp_path / "tls" / "tls.crt").exists()


def test_a_broken_secret_is_replaced(fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    fake.put("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                         "metadata": {"name": SECRET}, "data": {"tls.crt": b64(b"junk")}}, NS)
    result = reconciler(kubeconfig, tmp_path).run_once()
    assert Action.REPLACE_CA in result.actions
    assert (tmp_path / "tls" / "tls.crt").read_bytes() == secret_state(fake).serving.cert_pem


def test_forbidden_names_the_rbac_to_check(fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    fake.forbid("/secrets/", method="GET", times=1)
    with pytest.raises(KubeAccessError, match=r"reading Secret model-cache/model-cache-tls: 403 .*Role"):
        reconciler(kubeconfig, tmp_path).run_once()


def serve_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    from webhook.cli import build_parser

    d = tmp_path / "tls"
    return build_parser().parse_args(["serve", "--cert", str(d / "tls.crt"), "--key", str(d / "tls.key"), *extra])


def test_prepare_bootstraps_from_the_serve_options(fake: FakeApiServer, kubeconfig: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    cert_manager.prepare(serve_args(tmp_path, "--tls-secret", SECRET, "--tls-namespace", NS))
    assert (tmp_path / "tls" / "tls.crt").read_bytes() == secret_state(fake).serving.cert_pem


def test_without_tls_secret_serve_does_not_touch_the_cluster(fake: FakeApiServer, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "does-not-exist"))
    args = serve_args(tmp_path)
    cert_manager.prepare(args)
    assert cert_manager.start_background(args) is None
    assert fake.requests == [] and not (tmp_path / "tls").exists()


def test_bad_webhook_configs_option_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CertConfigError, match="--webhook-configs"):
        cert_manager.prepare(serve_args(tmp_path, "--tls-secret", SECRET, "--webhook-configs", "mutate=x"))


def test_background_thread_repairs_drift(fake: FakeApiServer, kubeconfig: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    args = serve_args(tmp_path, "--tls-secret", SECRET, "--tls-namespace", NS, "--cert-check-interval", "0.05")
    cert_manager.prepare(args)
    want = bundles(fake)[0]
    fake.edit(MUT, "model-cache", BLANK_FIRST_BUNDLE)
    bg = cert_manager.start_background(args)
    assert bg is not None
    try:
        deadline = time.monotonic() + 20  # a bound, not a timing: it normally takes ~0.1 s
        while bundles(fake)[0] != want and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bundles(fake)[0] == want
    finally:
        bg.stop()
    # Stopped for good: the next start_background makes a new thread.
    assert not bg.thread.is_alive()


def test_bootstrap_retries_a_restarting_api_server_but_not_a_refusal(
        fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    fake.fail("/secrets/", 503, method="GET", times=2)
    result = cert_manager.bootstrap(reconciler(kubeconfig, tmp_path), attempts=3, backoff=0.01)
    assert result.created and fake.count("/secrets/", "GET") == 3  # two 503s, then served

    patches = fake.count("mutatingwebhookconfigurations", "PATCH")
    fake.forbid("mutatingwebhookconfigurations", method="PATCH", times=1)
    fake.edit(MUT, "model-cache", BLANK_FIRST_BUNDLE)
    with pytest.raises(KubeAccessError, match="403"):
        cert_manager.bootstrap(reconciler(kubeconfig, tmp_path), attempts=3, backoff=0.01)
    assert fake.count("mutatingwebhookconfigurations", "PATCH") == patches + 1  # refused once, no retry


def test_a_deleted_secret_is_recreated_without_dropping_trust_in_the_served_certificate(
        fake: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    rec = reconciler(kubeconfig, tmp_path)
    rec.run_once()
    old = secret_state(fake)
    fake.delete("secrets", SECRET, NS)

    # Another replica, which has not yet noticed, still serves the old certificate.
    result = rec.run_once()
    new = secret_state(fake)
    assert result.created and new.ca != old.ca
    assert new.bundle == (old.ca.cert_pem, new.ca.cert_pem)
    assert bundles(fake) == [b64(new.bundle_pem)] * HOOKS
