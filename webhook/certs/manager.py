"""Self-managed certificates in the cluster: the imperative shell around
rotation.py (what to do) and api.py (the API calls).

`model-cache serve --tls-secret NAME` turns it on; without that option serve
uses the files at --cert/--key as they are (local runs, the cert-manager
overlay). Three hooks, called by server.py:

- add_arguments(parser): the serve options below.
- prepare(args): before gunicorn starts. Creates the Secret if absent (a 409
  means another replica won the race: read theirs), patches the caBundle of
  both webhook configurations, renews what is due, writes the files.
- start_background(args): in the gunicorn master once it listens. A thread
  repeats the same reconcile pass every --cert-check-interval seconds: it
  renews before expiry, rolls the CA over in two steps, re-patches a caBundle
  that something reset, and rewrites the files, which tls.py then reloads.

Every replica runs the same pass. They agree through the Secret: updates carry
its resourceVersion, so of two replicas renewing at once one gets 409 and
takes the other's result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import logging.config
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubernetes import client

from webhook.certs import x509
from webhook.certs.options import DEFAULT_CONFIGS, add_arguments  # noqa: F401 - re-exported
from webhook.errors import CertConfigError, CertSecretInvalid, KubeAccessError
from webhook.errors import Conflict
from webhook.certs.api import SecretStore, WebhookConfigRef, WebhookConfigs, api_client, parse_config_refs
from webhook.certs.rotation import Action, CertState, Facts, RotationPolicy, apply, new_state, plan
from webhook.certs.secret import build_secret, resource_version, state_from_secret

log = logging.getLogger(__name__)

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# More passes than any chain of actions needs (replace, fix, renew, prune);
# a bound so that a bug cannot spin.
MAX_STEPS = 6


@dataclass
class Settings:
    secret: str
    namespace: str
    service: str
    configs: tuple[WebhookConfigRef, ...]
    cert_file: Path
    key_file: Path
    ca_file: Path
    interval: float
    policy: RotationPolicy = field(default_factory=RotationPolicy)

    @property
    def dns_names(self) -> tuple[str, ...]:
        return tuple(x509.service_dns_names(self.service, self.namespace))


def _default_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return Path(NAMESPACE_FILE).read_text().strip() or "model-cache"
    except OSError:
        return "model-cache"


def settings_from_args(args: argparse.Namespace) -> Settings | None:
    """None when self-managed certificates are off (no --tls-secret)."""
    secret = getattr(args, "tls_secret", None)
    if not secret:
        return None
    try:
        configs = parse_config_refs(args.webhook_configs)
    except ValueError as err:
        raise CertConfigError(f"--webhook-configs {err}") from err
    if args.cert_check_interval <= 0:
        raise CertConfigError("--cert-check-interval must be positive")
    cert_file = Path(args.cert)
    return Settings(
        secret=secret,
        namespace=args.tls_namespace or _default_namespace(),
        service=args.tls_service,
        configs=configs,
        cert_file=cert_file,
        key_file=Path(args.key),
        ca_file=cert_file.parent / "ca.crt",
        interval=args.cert_check_interval,
    )


@dataclass
class PassResult:
    """What one reconcile pass did, for logs and tests."""

    created: bool = False
    lost_create_race: bool = False
    actions: list[Action] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    missing_configs: list[str] = field(default_factory=list)
    files_written: bool = False
    state: CertState | None = None


class Reconciler:
    """One replica's view: reads the Secret, acts, writes the files."""

    def __init__(self, settings: Settings, api: client.ApiClient) -> None:
        self.settings = settings
        self.store = SecretStore(api, settings.namespace, settings.secret)
        self.configs = WebhookConfigs(api)

    def run_once(self, now: dt.datetime | None = None) -> PassResult:
        result = PassResult()
        # A 409 on update means another replica changed the Secret between
        # our read and our write: start over from their version.
        for _ in range(MAX_STEPS):
            try:
                self._pass(now or dt.datetime.now(dt.timezone.utc), result)
                return result
            except Conflict:
                log.info("Secret %s changed under us; reading it again", self.settings.secret)
        raise KubeAccessError(f"updating Secret {self.settings.secret}", 409, "kept conflicting")

    def _pass(self, now: dt.datetime, result: PassResult) -> None:
        s = self.settings
        secret = self.store.get()
        if secret is None:
            state = _keep_local_trust(new_state(s.dns_names, now, s.policy), s.ca_file, now)
            try:
                secret = self.store.create(build_secret(s.secret, s.namespace, state))
                result.created = True
                log.info("created Secret %s/%s with a new CA", s.namespace, s.secret)
            except Conflict:
                # Another replica created it first: theirs is the one every
                # replica serves.
                result.lost_create_race = True
                secret = self.store.get()
                if secret is None:
                    raise KubeAccessError(f"reading Secret {s.secret}", 404, "vanished right after a 409") from None
        try:
            state = state_from_secret(secret)
        except CertSecretInvalid as err:
            log.error("%s", err)
            state = _keep_local_trust(new_state(s.dns_names, now, s.policy), s.ca_file, now)
            secret = self.store.replace(build_secret(s.secret, s.namespace, state, resource_version(secret)))
            result.actions.append(Action.REPLACE_CA)

        for _ in range(MAX_STEPS):
            published = self._publish(state.bundle_pem, result)
            decision = plan(state, Facts(now, s.dns_names, published, s.policy))
            if decision.action is Action.NOTHING:
                break
            log.info("certificates: %s (%s)", decision.action.value, decision.reason)
            state = apply(state, decision.action, Facts(now, s.dns_names, published, s.policy))
            secret = self.store.replace(build_secret(s.secret, s.namespace, state, resource_version(secret)))
            result.actions.append(decision.action)
        result.state = state
        result.files_written = write_cert_files(s, state)

    def _publish(self, bundle_pem: bytes, result: PassResult) -> bool:
        """Patches BUNDLE_PEM into every configuration. True only when all
        carried it already: a bundle patched just now may not have reached the
        API servers' informers, so a staged CA must not sign yet; the next
        pass will find it in place."""
        published = True
        for ref in self.settings.configs:
            outcome = self.configs.ensure_ca_bundle(ref, bundle_pem)
            if outcome == "set":
                log.info("caBundle of %s set", ref.title)
                result.patched.append(ref.title)
                published = False
            elif outcome == "patched":
                # Something reset or changed it (a re-apply, another
                # injector), or a roll-over added a CA.
                log.warning("caBundle of %s was out of date; patched", ref.title)
                result.patched.append(ref.title)
                published = False
            elif outcome == "missing":
                log.warning("%s does not exist (yet); its caBundle will be patched once it does", ref.title)
                result.missing_configs.append(ref.title)
                published = False
        return published


def _keep_local_trust(state: CertState, ca_file: Path, now: dt.datetime) -> CertState:
    """A Secret deleted under running replicas: they still serve certificates
    of the old CA until their next pass, so the unexpired CAs they trust
    (our own ca.crt, written from the old Secret) stay in the new bundle."""
    try:
        old = x509.split_bundle(ca_file.read_bytes())
    except (OSError, ValueError):
        return state
    keep = [p for p in old if x509.not_after(x509.load_cert(p)) > now and p not in state.bundle]
    return replace(state, bundle=(*keep, *state.bundle)) if keep else state


def write_cert_files(settings: Settings, state: CertState) -> bool:
    """Writes what differs from disk; True when something was written. The key
    goes first: tls.py keeps the old context while the pair does not match."""
    wrote = False
    for path, data, mode in (
        (settings.ca_file, state.bundle_pem, 0o644),
        (settings.key_file, state.serving.key_pem, 0o600),
        (settings.cert_file, state.serving.cert_pem, 0o644),
    ):
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        x509.write_atomic(path, data, mode)
        wrote = True
    return wrote


def bootstrap(reconciler: Reconciler, attempts: int = 5, backoff: float = 1.0) -> PassResult:
    """The first pass, retried while the API server is unreachable or
    answers 5xx (a control plane restarting); a 4xx (RBAC, a bad option) is
    final at once, since waiting cannot fix it."""
    for attempt in range(1, attempts + 1):
        try:
            return reconciler.run_once()
        except KubeAccessError as err:
            transient = err.status is None or err.status >= 500
            if not transient or attempt == attempts:
                raise
            log.warning("%s; retrying in %.0fs (%d/%d)", err, backoff, attempt, attempts)
            time.sleep(backoff)
            backoff *= 2
    raise AssertionError("unreachable")


def prepare(args: argparse.Namespace) -> None:
    """Runs in `model-cache serve` before gunicorn starts: afterwards the
    files at --cert/--key hold the Secret's certificate. Raises CertError when
    the API server cannot be used (the pod restarts and tries again)."""
    settings = settings_from_args(args)
    if settings is None:
        return
    if not logging.getLogger().handlers:
        # gunicorn configures logging only once it starts; the bootstrap's
        # lines should already be the same JSON.
        from webhook.logs import logging_config

        logging.config.dictConfig(logging_config(getattr(args, "log_level", "info")))
    result = bootstrap(Reconciler(settings, api_client()))
    log.info("certificates ready: Secret %s/%s%s, serving %s", settings.namespace, settings.secret,
             " (created)" if result.created else "", ", ".join(settings.dns_names))


class Background:
    """The renewal thread. It waits first: prepare() has just done a pass, and
    gunicorn forks its workers right after when_ready, which is safest while
    this thread sleeps instead of holding a lock inside OpenSSL or urllib3."""

    def __init__(self, reconciler: Reconciler, interval: float) -> None:
        self.reconciler, self.interval = reconciler, interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="model-cache-certs", daemon=True)

    def start(self) -> Background:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.reconciler.run_once()
            except Exception:
                log.exception("certificate check failed; retrying in %.0fs", self.interval)


_background: Background | None = None


def start_background(args: argparse.Namespace, api: Any = None) -> Background | None:
    """Runs in the gunicorn master once it listens. Returns the thread's
    handle (None when self-managed certificates are off)."""
    global _background
    settings = settings_from_args(args)
    if settings is None:
        return None
    if _background is None or not _background.thread.is_alive():
        _background = Background(Reconciler(settings, api or api_client()), settings.interval).start()
    return _background
