"""The pure core of self-managed certificates: given what the Secret holds and
the time, what to do next.

State lives in one Secret (see cert_secret.py): the CA that signs, the serving
pair, the trust bundle published as the caBundle of the webhook
configurations, and possibly a *next* CA that is already trusted but does not
sign yet.

A CA roll-over takes two steps so that no request fails:

1. STAGE_CA: a new CA is made and appended to the bundle; it signs nothing.
   Every replica patches the bundle into both webhook configurations.
2. PROMOTE_CA, only once the bundle is published and `promote_after` has
   passed (the API servers' informers have seen it): the next CA becomes the
   signing CA and a new serving certificate is issued from it. The old CA
   stays in the bundle until it expires, so replicas still serving the old
   certificate keep working until they pick up the new one.

Everything here is a function of its arguments; `apply` draws new keys, which
is the only thing that is not.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field, replace

from webhook.certs import x509
from webhook.certs.x509 import CertPair


@dataclass(frozen=True)
class RotationPolicy:
    """When to renew. The defaults keep two thirds of a serving certificate's
    life as margin, and roll the CA a quarter of a year before it ends."""

    ca_validity: dt.timedelta = x509.CA_VALIDITY
    ca_renew_before: dt.timedelta = dt.timedelta(days=90)
    serving_validity: dt.timedelta = dt.timedelta(days=90)
    serving_renew_before: dt.timedelta = dt.timedelta(days=60)
    # The API server reads webhook configurations through an informer: a few
    # seconds in practice. Ten minutes leaves room for slow control planes.
    promote_after: dt.timedelta = dt.timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.serving_renew_before >= self.serving_validity:
            raise ValueError("serving_renew_before must be shorter than serving_validity")
        if self.ca_renew_before >= self.ca_validity:
            raise ValueError("ca_renew_before must be shorter than ca_validity")
        if self.promote_after >= self.ca_renew_before:
            raise ValueError("promote_after must be shorter than ca_renew_before")


@dataclass(frozen=True)
class CertState:
    ca: CertPair
    serving: CertPair
    bundle: tuple[bytes, ...]  # PEM certificates, oldest first
    next_ca: CertPair | None = None

    @property
    def bundle_pem(self) -> bytes:
        return x509.join_bundle(list(self.bundle))


class Action(enum.Enum):
    NOTHING = "nothing"
    REPLACE_CA = "replace-ca"  # the signing CA is expired: no graceful path left
    FIX_BUNDLE = "fix-bundle"  # a CA we sign with (or will) is missing from the bundle
    PROMOTE_CA = "promote-ca"
    STAGE_CA = "stage-ca"
    RENEW_SERVING = "renew-serving"
    PRUNE_BUNDLE = "prune-bundle"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


@dataclass(frozen=True)
class Facts:
    """What the planner needs besides the state."""

    now: dt.datetime
    dns_names: tuple[str, ...]
    # True when every webhook of both configurations carries this state's
    # bundle as its caBundle: the precondition for signing with a staged CA.
    bundle_published: bool
    policy: RotationPolicy = field(default_factory=RotationPolicy)


def staged_at(ca: CertPair) -> dt.datetime:
    return x509.not_before(ca.cert) + x509.BACKDATE


def plan(state: CertState, facts: Facts) -> Decision:
    """The one next step for STATE, most urgent first."""
    now, policy = facts.now, facts.policy
    ca = state.ca.cert
    bundle = [x509.load_cert(p) for p in state.bundle]

    if x509.not_after(ca) <= now:
        return Decision(Action.REPLACE_CA, f"the CA expired at {x509.not_after(ca):%Y-%m-%d %H:%M}Z")
    needed = [state.ca] + ([state.next_ca] if state.next_ca else [])
    for pair in needed:
        if pair.cert not in bundle:
            return Decision(Action.FIX_BUNDLE, f"CA {pair.cert.serial_number:x} is missing from the bundle")
    if state.next_ca is not None:
        waited = now - staged_at(state.next_ca)
        if waited >= policy.promote_after and facts.bundle_published:
            return Decision(Action.PROMOTE_CA, f"the next CA has been trusted for {_human(waited)}")
    elif x509.not_after(ca) - now < policy.ca_renew_before:
        return Decision(Action.STAGE_CA, f"the CA expires in {_human(x509.not_after(ca) - now)}")

    why = _serving_problem(state, facts)
    if why:
        return Decision(Action.RENEW_SERVING, why)
    expired = [c for c in bundle if x509.not_after(c) <= now]
    if expired:
        return Decision(Action.PRUNE_BUNDLE, f"{len(expired)} expired CA(s) in the bundle")
    return Decision(Action.NOTHING, "certificates are current")


def _serving_problem(state: CertState, facts: Facts) -> str | None:
    serving = state.serving.cert
    if not x509.is_signed_by(serving, state.ca.cert):
        return "the serving certificate was not signed by the current CA"
    if not state.serving.matches_key():
        return "the serving key does not match its certificate"
    missing = set(facts.dns_names) - set(x509.dns_names(serving))
    if missing:
        return f"the serving certificate lacks {', '.join(sorted(missing))}"
    left = x509.not_after(serving) - facts.now
    if left <= dt.timedelta(0):
        return "the serving certificate expired"
    # A certificate that already ends with its CA cannot be extended by a
    # renewal; the CA roll-over (staged 90 days ahead) takes care of it.
    # Without this check every pass would renew it again.
    ends_with_ca = x509.not_after(serving) >= x509.not_after(state.ca.cert) - dt.timedelta(minutes=1)
    if left < facts.policy.serving_renew_before and not ends_with_ca:
        return f"the serving certificate expires in {_human(left)}"
    return None


def new_state(dns_names: tuple[str, ...], now: dt.datetime, policy: RotationPolicy) -> CertState:
    """A first CA and serving certificate (a fresh install)."""
    ca = x509.make_ca(now=now, validity=policy.ca_validity)
    return CertState(
        ca=ca,
        serving=x509.make_serving(ca, list(dns_names), now=now, validity=policy.serving_validity),
        bundle=(ca.cert_pem,),
    )


def apply(state: CertState, action: Action, facts: Facts) -> CertState:
    """The state after ACTION. Draws new keys where the action needs them."""
    now, policy, names = facts.now, facts.policy, list(facts.dns_names)

    def issue(ca: CertPair) -> CertPair:
        return x509.make_serving(ca, names, now=now, validity=policy.serving_validity)

    if action is Action.NOTHING:
        return state
    if action is Action.REPLACE_CA:
        ca = x509.make_ca(now=now, validity=policy.ca_validity)
        return CertState(ca=ca, serving=issue(ca), bundle=(*_unexpired(state.bundle, now), ca.cert_pem))
    if action is Action.FIX_BUNDLE:
        bundle = list(state.bundle)
        for pair in (state.ca, state.next_ca):
            if pair is not None and pair.cert not in [x509.load_cert(p) for p in bundle]:
                bundle.append(pair.cert_pem)
        return replace(state, bundle=tuple(bundle))
    if action is Action.STAGE_CA:
        nxt = x509.make_ca(now=now, validity=policy.ca_validity)
        return replace(state, next_ca=nxt, bundle=(*state.bundle, nxt.cert_pem))
    if action is Action.PROMOTE_CA:
        if state.next_ca is None:
            raise ValueError("PROMOTE_CA needs a staged CA")
        return replace(state, ca=state.next_ca, next_ca=None, serving=issue(state.next_ca))
    if action is Action.RENEW_SERVING:
        return replace(state, serving=issue(state.ca))
    if action is Action.PRUNE_BUNDLE:
        return replace(state, bundle=_unexpired(state.bundle, now))
    raise ValueError(f"unknown action {action}")


def _unexpired(bundle: tuple[bytes, ...], now: dt.datetime) -> tuple[bytes, ...]:
    return tuple(p for p in bundle if x509.not_after(x509.load_cert(p)) > now)


def _human(delta: dt.timedelta) -> str:
    if delta.days >= 2:
        return f"{delta.days} days"
    if delta.total_seconds() >= 7200:
        return f"{int(delta.total_seconds() // 3600)} hours"
    return f"{max(0, int(delta.total_seconds() // 60))} minutes"
