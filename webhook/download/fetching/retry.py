"""The downloader's one retry policy: exponential backoff with full jitter,
at least what the origin asked for in Retry-After (429/503), and a budget
that starts again whenever bytes arrive. Used for the listings and probes
(`with_retries`) and for every byte stream (stream.py, ranged.py); botocore's
and urllib3's own retries are off, so a failure is retried here only."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from webhook.download.errors import NetworkError, TransientError
from webhook.download.lines import emit

T = TypeVar("T")

# An origin asking for longer than this is capped: a pod should not sleep for
# an hour because of a misconfigured header; it retries and asks again.
RETRY_AFTER_CAP = 300.0
BACKOFF_CAP = 30.0


def retry_settings() -> tuple[int, float]:
    """(retries, base delay in s), tunable by env for tests and impatient users."""
    return int(os.environ.get("MODEL_CACHE_RETRIES", "8")), float(os.environ.get("MODEL_CACHE_RETRY_BACKOFF", "1"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    import email.utils  # only for the rare HTTP-date form: kept off the fast path's imports

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    left = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, left), RETRY_AFTER_CAP)


def backoff_delay(attempt: int, base: float, cap: float = BACKOFF_CAP) -> float:
    """Exponential with full jitter, so that many pods don't retry in step."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** (attempt - 1))


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 8
    backoff: float = 1.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        retries, base = retry_settings()
        return cls(retries, base)

    def delay(self, attempt: int, err: BaseException) -> float:
        """The wait before retry `attempt` (1-based): never less than the
        origin's Retry-After."""
        d = backoff_delay(attempt, self.backoff)
        after = getattr(err, "retry_after", None)
        return max(d, after) if after is not None else d


def with_retries(call: Callable[[], T], what: str, policy: RetryPolicy | None = None) -> T:
    policy = policy or RetryPolicy.from_env()
    attempt = 0
    while True:
        try:
            return call()
        except TransientError as err:
            attempt += 1
            if attempt > policy.retries:
                text = str(err) if str(err).startswith(what) else f"{what}: {err}"
                raise NetworkError(f"{text}; gave up after {policy.retries} retries") from None
            delay = policy.delay(attempt, err)
            emit(f"model-cache: {err}; retry {attempt}/{policy.retries} in {delay:.1f}s")
            time.sleep(delay)
