"""Eviction under the node's quota: least recently used first, never a model
a pod on the node mounts, never a prewarmed one, never one being downloaded.
`choose` is pure; `evict` is the downloader's own (under the model's lock,
renamed aside first, so no pod starts on a half-deleted model)."""

from __future__ import annotations

import time
from pathlib import Path

from webhook.agent.holdings import Held
from webhook.download.volume import gc
from webhook.download.volume.publish import Layout


def choose(held: list[Held], quota: int, keep: frozenset[tuple[str, str]], busy: frozenset[Path],
           min_age: float, now: float) -> list[Held]:
    """Which models to evict, oldest use first, until the total fits QUOTA.
    KEEP (model, revision) are in use or prewarmed; BUSY destinations are
    locked by a download. Fewer than needed when too much is kept."""
    total = sum(h.holding.size for h in held)
    out: list[Held] = []
    for h in sorted(held, key=lambda h: h.last_used):
        if total <= quota:
            break
        if h.key in keep or h.dest in busy or now - h.last_used < min_age:
            continue
        out.append(h)
        total -= h.holding.size
    return out


def locked(held: list[Held]) -> frozenset[Path]:
    """The destinations whose lock is live (a download or another eviction),
    by gc's measure: touched within gc.ABANDONED_LOCK_SECONDS."""
    now = time.time()
    out = set()
    for h in held:
        try:
            if now - Layout(h.dest).lock.stat().st_mtime < gc.ABANDONED_LOCK_SECONDS:
                out.add(h.dest)
        except FileNotFoundError:
            pass
    return frozenset(out)


def evict(h: Held, min_age: float) -> bool:
    """Removes one model; False when it was locked or used since the scan."""
    return gc.evict(gc.Entry(h.dest, h.holding.size, h.last_used, locked=False), min_age)


def run(held: list[Held], quota: int, keep: frozenset[tuple[str, str]], min_age: float) -> list[Held]:
    """Evicts what `choose` picks; the models really removed."""
    victims = choose(held, quota, keep, locked(held), min_age, time.time())
    return [h for h in victims if evict(h, min_age)]
