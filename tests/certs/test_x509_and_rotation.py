"""The certificate logic with the real cryptography: names, expiry, renewal,
CA roll-over, and the Secret codec. No cluster, no clock: `now` is passed in."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509

from webhook.certs import x509 as certs
from webhook.errors import CertSecretInvalid
from webhook.certs.rotation import Action, CertState, Facts, RotationPolicy, apply, new_state, plan
from webhook.certs.secret import build_secret, state_from_secret

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
NAMES = tuple(certs.service_dns_names("model-cache", "model-cache"))
POLICY = RotationPolicy()


def facts(now: dt.datetime, published: bool = True, names: tuple[str, ...] = NAMES) -> Facts:
    return Facts(now=now, dns_names=names, bundle_published=published, policy=POLICY)


def trusted_by(cert_pem: bytes, bundle: tuple[bytes, ...]) -> bool:
    cert = certs.load_cert(cert_pem)
    return any(certs.is_signed_by(cert, certs.load_cert(ca)) for ca in bundle)


# --- certs.py ---------------------------------------------------------------

def test_generate_names_every_form_of_the_service_and_localhost(tmp_path: Path) -> None:
    names = certs.generate(tmp_path, service="hook", namespace="ns")
    cert = certs.load_cert((tmp_path / "tls.crt").read_bytes())
    ca = certs.load_cert((tmp_path / "ca.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost", "hook", "hook.ns", "hook.ns.svc", "hook.ns.svc.cluster.local"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert set(names) == set(certs.dns_names(cert))
    assert certs.is_signed_by(cert, ca)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0  # the key is private
    assert certs.CertPair((tmp_path / "tls.crt").read_bytes(), (tmp_path / "tls.key").read_bytes()).matches_key()


def test_serving_certificate_never_outlives_its_ca() -> None:
    ca = certs.make_ca(now=T0, validity=dt.timedelta(days=10))
    serving = certs.make_serving(ca, ["a"], now=T0, validity=dt.timedelta(days=90))
    assert certs.not_after(serving.cert) == certs.not_after(ca.cert)


def test_a_ca_with_the_same_name_but_another_key_did_not_sign() -> None:
    ca1, ca2 = certs.make_ca(now=T0), certs.make_ca(now=T0)
    serving = certs.make_serving(ca1, ["a"], now=T0)
    assert ca1.cert.subject == ca2.cert.subject
    assert certs.is_signed_by(serving.cert, ca1.cert)
    assert not certs.is_signed_by(serving.cert, ca2.cert)


def test_bundle_split_and_join_round_trip() -> None:
    a, b = certs.make_ca(now=T0).cert_pem, certs.make_ca(now=T0).cert_pem
    assert certs.split_bundle(certs.join_bundle([a, b])) == [a, b]
    assert certs.split_bundle(b"") == []


def test_policy_rejects_margins_that_cannot_work() -> None:
    with pytest.raises(ValueError):
        RotationPolicy(serving_validity=dt.timedelta(days=30), serving_renew_before=dt.timedelta(days=30))


# --- the planner ------------------------------------------------------------

def test_a_fresh_state_needs_nothing() -> None:
    state = new_state(NAMES, T0, POLICY)
    assert plan(state, facts(T0)).action is Action.NOTHING
    assert state.bundle == (state.ca.cert_pem,)
    assert certs.dns_names(state.serving.cert) == list(NAMES)


def test_serving_certificate_is_renewed_well_before_expiry() -> None:
    state = new_state(NAMES, T0, POLICY)
    expires = certs.not_after(state.serving.cert)
    just_before = expires - POLICY.serving_renew_before - dt.timedelta(minutes=1)
    assert plan(state, facts(just_before)).action is Action.NOTHING
    due = expires - POLICY.serving_renew_before + dt.timedelta(minutes=1)
    decision = plan(state, facts(due))
    assert decision.action is Action.RENEW_SERVING
    assert "expires in" in decision.reason
    renewed = apply(state, decision.action, facts(due))
    assert certs.not_after(renewed.serving.cert) > expires
    assert renewed.ca == state.ca and renewed.bundle == state.bundle  # no trust change needed
    assert plan(renewed, facts(due)).action is Action.NOTHING


def test_a_renamed_service_gets_a_new_certificate() -> None:
    state = new_state(NAMES, T0, POLICY)
    other = tuple(certs.service_dns_names("model-cache", "other-ns"))
    decision = plan(state, facts(T0, names=other))
    assert decision.action is Action.RENEW_SERVING
    assert "model-cache.other-ns.svc" in decision.reason
    assert set(other) <= set(certs.dns_names(apply(state, decision.action, facts(T0, names=other)).serving.cert))


def test_ca_roll_over_trusts_the_new_ca_before_it_signs() -> None:
    state = new_state(NAMES, T0, POLICY)
    old_ca = state.ca
    roll = certs.not_after(old_ca.cert) - POLICY.ca_renew_before + dt.timedelta(hours=1)

    decision = plan(state, facts(roll))
    assert decision.action is Action.STAGE_CA
    staged = apply(state, Action.STAGE_CA, facts(roll))
    assert staged.next_ca is not None
    assert staged.ca == old_ca, "a staged CA must not sign yet"
    assert staged.bundle == (old_ca.cert_pem, staged.next_ca.cert_pem)
    assert certs.is_signed_by(staged.serving.cert, old_ca.cert)

    # Not yet: the bundle may not have reached the API servers.
    soon = roll + POLICY.promote_after - dt.timedelta(seconds=1)
    assert plan(staged, facts(soon)).action is not Action.PROMOTE_CA
    later = roll + POLICY.promote_after
    assert plan(staged, facts(later, published=False)).action is not Action.PROMOTE_CA

    decision = plan(staged, facts(later, published=True))
    assert decision.action is Action.PROMOTE_CA
    promoted = apply(staged, Action.PROMOTE_CA, facts(later))
    assert promoted.ca == staged.next_ca and promoted.next_ca is None
    assert certs.is_signed_by(promoted.serving.cert, staged.next_ca.cert)
    # Replicas still serving the old certificate stay trusted.
    assert promoted.bundle == staged.bundle
    assert plan(promoted, facts(later)).action is Action.NOTHING

    # Once the old CA has expired it leaves the bundle.
    after = certs.not_after(old_ca.cert) + dt.timedelta(minutes=1)
    assert plan(promoted, facts(after)).action is Action.RENEW_SERVING  # 90 days on, it is due too
    promoted = apply(promoted, Action.RENEW_SERVING, facts(after))
    assert plan(promoted, facts(after)).action is Action.PRUNE_BUNDLE
    pruned = apply(promoted, Action.PRUNE_BUNDLE, facts(after))
    assert pruned.bundle == (promoted.ca.cert_pem,)


def test_no_renewal_churn_while_a_roll_over_waits_for_the_bundle() -> None:
    """Near the CA's end the serving certificate is capped at the CA's expiry;
    renewing it again would not extend it, so the planner must not loop."""
    ca = certs.make_ca(now=T0, validity=dt.timedelta(days=400))
    late = certs.not_after(ca.cert) - dt.timedelta(days=30)
    serving = certs.make_serving(ca, list(NAMES), now=late, validity=POLICY.serving_validity)
    nxt = certs.make_ca(now=late)
    state = CertState(ca=ca, serving=serving, bundle=(ca.cert_pem, nxt.cert_pem), next_ca=nxt)
    assert plan(state, facts(late, published=False)).action is Action.NOTHING


def test_an_expired_ca_is_replaced_and_unexpired_cas_stay_trusted() -> None:
    state = new_state(NAMES, T0, RotationPolicy(ca_validity=dt.timedelta(days=200), ca_renew_before=dt.timedelta(days=20)))
    other = certs.make_ca(now=T0)
    state = CertState(ca=state.ca, serving=state.serving, bundle=(*state.bundle, other.cert_pem))
    dead = certs.not_after(state.ca.cert) + dt.timedelta(seconds=1)
    assert plan(state, facts(dead)).action is Action.REPLACE_CA
    fresh = apply(state, Action.REPLACE_CA, facts(dead))
    assert fresh.ca != state.ca
    assert fresh.bundle == (other.cert_pem, fresh.ca.cert_pem)
    assert plan(fresh, facts(dead)).action is Action.NOTHING


def test_a_signing_ca_missing_from_the_bundle_is_added_back() -> None:
    state = new_state(NAMES, T0, POLICY)
    broken = CertState(ca=state.ca, serving=state.serving, bundle=())
    assert plan(broken, facts(T0)).action is Action.FIX_BUNDLE
    assert apply(broken, Action.FIX_BUNDLE, facts(T0)).bundle == (state.ca.cert_pem,)


def test_twelve_years_of_daily_passes_never_serve_an_untrusted_certificate() -> None:
    """The loop a replica runs: publish the bundle, then act. Whatever certificate
    a pass leaves to serve must be trusted by the bundle published before it,
    and valid at that time."""
    state = new_state(NAMES, T0, POLICY)
    seen: set[Action] = set()
    now = T0
    while now < T0 + dt.timedelta(days=365 * 12):
        published = state.bundle
        for _ in range(6):
            decision = plan(state, facts(now))
            if decision.action is Action.NOTHING:
                break
            seen.add(decision.action)
            state = apply(state, decision.action, facts(now))
        assert trusted_by(state.serving.cert_pem, published), f"untrusted certificate at {now}"
        serving = state.serving.cert
        assert certs.not_before(serving) <= now < certs.not_after(serving)
        now += dt.timedelta(days=1)
    assert {Action.RENEW_SERVING, Action.STAGE_CA, Action.PROMOTE_CA, Action.PRUNE_BUNDLE} <= seen
    assert Action.REPLACE_CA not in seen


# --- the Secret codec -------------------------------------------------------

def test_secret_round_trip_keeps_every_part() -> None:
    state = new_state(NAMES, T0, POLICY)
    state = apply(state, Action.STAGE_CA, facts(T0))
    secret = build_secret("model-cache-tls", "model-cache", state, resource_version="7")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["resourceVersion"] == "7"
    assert {"tls.crt", "tls.key", "ca.crt", "ca.key", "ca-bundle.crt", "next-ca.crt", "next-ca.key"} == set(secret["data"])
    assert state_from_secret(secret) == state


@pytest.mark.parametrize("breakage", ["missing", "garbage", "mismatch"])
def test_a_broken_secret_is_reported_by_name(breakage: str) -> None:
    state = new_state(NAMES, T0, POLICY)
    secret = build_secret("model-cache-tls", "model-cache", state)
    if breakage == "missing":
        del secret["data"]["tls.key"]
    elif breakage == "garbage":
        secret["data"]["ca.crt"] = base64.b64encode(b"not a certificate").decode()
    else:
        secret["data"]["tls.key"] = secret["data"]["ca.key"]
    with pytest.raises(CertSecretInvalid, match="model-cache-tls"):
        state_from_secret(secret)


# --- expiry metrics ---------------------------------------------------------

def test_expiry_gauges_read_the_files_at_scrape_time(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from webhook.certs.expiry import CertificateCollector

    old_ca = certs.make_ca(now=T0, validity=dt.timedelta(days=100))
    new_ca = certs.make_ca(now=T0)
    serving = certs.make_serving(new_ca, list(NAMES), now=T0, validity=dt.timedelta(days=90))
    certs.write_files(tmp_path, new_ca, serving)
    certs.write_atomic(tmp_path / "ca.crt", certs.join_bundle([old_ca.cert_pem, new_ca.cert_pem]))
    registry = CollectorRegistry()
    registry.register(CertificateCollector(tmp_path / "tls.crt"))

    def scrape() -> dict[str, float]:
        text = generate_latest(registry).decode()
        return {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("model_cache_certificate_expiry")}

    serving_at = (T0 + dt.timedelta(days=90)).timestamp()
    ca_at = (T0 + dt.timedelta(days=100)).timestamp()  # the earliest CA of the bundle
    assert scrape() == {'certificate="ca"': ca_at, 'certificate="serving"': serving_at}

    # A renewal is seen at the next scrape, without a restart.
    renewed = certs.make_serving(new_ca, list(NAMES), now=T0 + dt.timedelta(days=30), validity=dt.timedelta(days=90))
    certs.write_atomic(tmp_path / "tls.crt", renewed.cert_pem)
    assert scrape()['certificate="serving"'] == (T0 + dt.timedelta(days=120)).timestamp()


def test_expiry_gauges_skip_missing_files(tmp_path: Path) -> None:
    from webhook.certs.expiry import expiry_seconds

    assert expiry_seconds(tmp_path / "tls.crt", tmp_path / "ca.crt") == {}
