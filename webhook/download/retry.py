"""Retries with backoff for the calls outside the byte streams (listings, probes)."""

from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

from webhook.download.errors import NetworkError, TransientError

T = TypeVar("T")


def retry_settings() -> tuple[int, float]:
    """(retries, base delay in s), tunable by env for tests and impatient users."""
    return int(os.environ.get("MODEL_CACHE_RETRIES", "8")), float(os.environ.get("MODEL_CACHE_RETRY_BACKOFF", "1"))


def with_retries(call: Callable[[], T], what: str) -> T:
    from webhook.download.fetch import backoff_delay

    retries, base = retry_settings()
    attempt = 0
    while True:
        try:
            return call()
        except TransientError as err:
            attempt += 1
            if attempt > retries:
                raise NetworkError(f"{what}: {err}; gave up after {retries} retries") from None
            delay = backoff_delay(attempt, base)
            print(f"model-cache: {err}; retry {attempt}/{retries} in {delay:.1f}s", flush=True)
            time.sleep(delay)
