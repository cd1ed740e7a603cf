"""The policies in force: loaded from a directory, reloaded when files change,
a bad file never replacing its last good version."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from webhook.errors import Denied, PolicyError
from webhook.policy.files import file_namespace, parse_policy, policy_files
from webhook.policy.resolved import ResolvedModel, builtin_defaults, merge_defaults
from webhook.policy.schema import EffectiveDefaults, ModelCachePolicy
from webhook.vocabulary import DEFAULT_POLICY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Loaded:
    policy: ModelCachePolicy
    fingerprint: tuple[int, int, int]


@dataclass
class _Snapshot:
    files: dict[str, _Loaded] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # fingerprints of the bad contents, so an unchanged bad file is not parsed again
    bad: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    merged: dict[str, EffectiveDefaults] = field(default_factory=dict)


class PolicyStore:
    """The policies in force. Reloads at most every `interval` seconds, from the
    request path, so every gunicorn worker sees edits without a thread of its own."""

    def __init__(self, directory: Path, interval: float = 2.0,
                 on_rejected: Callable[[str], None] | None = None,
                 on_invalid_count: Callable[[int], None] | None = None,
                 downloader_image: str | None = None) -> None:
        """ON_REJECTED(file name) is called for each file that fails to load,
        ON_INVALID_COUNT(n) whenever the number of bad files changes: the
        server layer turns them into metrics."""
        self.directory = directory
        self._base = builtin_defaults(downloader_image)
        self.interval = interval
        self._on_rejected = on_rejected or (lambda name: None)
        self._on_invalid_count = on_invalid_count or (lambda n: None)
        self._snapshot = _Snapshot()
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self.reload()

    # reading

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._snapshot.errors)

    @property
    def namespaces(self) -> list[str]:
        return sorted(self._snapshot.files)

    def readiness(self) -> tuple[bool, str]:
        snap = self._snapshot
        if not snap.files:
            why = f"no valid policy file in {self.directory}"
            if snap.errors:
                why += ": " + "; ".join(snap.errors.values())
            return False, why
        detail = f"{len(snap.files)} policy file(s) loaded"
        if snap.errors:
            detail += "; last good version kept for: " + "; ".join(snap.errors.values())
        return True, detail

    def resolve(self, namespace: str, model: str) -> ResolvedModel:
        """The model as NAMESPACE sees it, or Denied naming the fix."""
        self.maybe_reload()
        snap = self._snapshot
        own = snap.files.get(namespace)
        fallback = snap.files.get(DEFAULT_POLICY)
        if own is None and fallback is None:
            raise Denied(
                f"no model-cache policy for namespace {namespace}: ask the platform team to add "
                f"{namespace}.yaml (or {DEFAULT_POLICY}.yaml) to the model-cache policies"
            )
        for name, loaded in ((namespace, own), (DEFAULT_POLICY, fallback)):
            if loaded is not None and model in loaded.policy.models:
                return ResolvedModel(
                    name=model,
                    namespace=namespace,
                    spec=loaded.policy.models[model],
                    defaults=self._defaults_for(snap, namespace),
                    policy_file=f"{name}.yaml",
                )
        known = sorted({m for loaded in (own, fallback) if loaded for m in loaded.policy.models})
        listing = ", ".join(known) if known else "(none)"
        raise Denied(
            f'model "{model}" is not in the model-cache policy for namespace {namespace}; '
            f"known models: {listing}. Fix the model.cache/name annotation, or ask the platform team to add it"
        )

    def defaults_for(self, namespace: str) -> EffectiveDefaults:
        self.maybe_reload()
        return self._defaults_for(self._snapshot, namespace)

    def _defaults_for(self, snap: _Snapshot, namespace: str) -> EffectiveDefaults:
        cached = snap.merged.get(namespace)
        if cached is None:
            layers = [snap.files.get(DEFAULT_POLICY), snap.files.get(namespace) if namespace != DEFAULT_POLICY else None]
            cached = merge_defaults(*(l.policy.defaults for l in layers if l is not None), base=self._base)
            snap.merged[namespace] = cached
        return cached

    # loading

    def maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.interval:
            return
        if self._lock.acquire(blocking=False):
            try:
                self._checked_at = now
                self._reload_locked()
            finally:
                self._lock.release()

    def reload(self) -> None:
        with self._lock:
            self._checked_at = time.monotonic()
            self._reload_locked()

    def _reload_locked(self) -> None:
        old = self._snapshot
        new = _Snapshot()
        for path in policy_files(self.directory):
            namespace = file_namespace(path.name)
            try:
                st = os.stat(path)  # follows the ..data symlink: a swap gives a new inode
            except FileNotFoundError:
                continue
            fingerprint = (st.st_ino, st.st_mtime_ns, st.st_size)
            previous = old.files.get(namespace)
            if old.bad.get(namespace) == fingerprint:
                new.errors[namespace], new.bad[namespace] = old.errors[namespace], fingerprint
                if previous is not None:
                    new.files[namespace] = previous
                continue
            if previous is not None and previous.fingerprint == fingerprint:
                new.files[namespace] = previous
                continue
            try:
                new.files[namespace] = _Loaded(parse_policy(path.read_bytes(), path.name), fingerprint)
                log.info("policy file loaded: %s", path.name)
            except (PolicyError, OSError) as err:
                self._on_rejected(path.name)
                kept = "last good version kept" if previous else "no earlier version to keep"
                log.error("policy file rejected (%s): %s", kept, err)
                new.errors[namespace] = f"{err} ({kept})"
                new.bad[namespace] = fingerprint
                if previous is not None:
                    new.files[namespace] = previous
        unchanged = new.bad == old.bad and {k: v.fingerprint for k, v in new.files.items()} == {
            k: v.fingerprint for k, v in old.files.items()
        }
        if not unchanged:
            self._snapshot = new  # one assignment: readers see the old or the new, never a mix
            self._on_invalid_count(len(new.errors))
