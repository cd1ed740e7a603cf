"""How files are cut into parts, the part journal's checks, and Retry-After parsing."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path

from webhook.download.fetching.part_journal import MAX_PART, MIN_PART, Journal, plan_parts
from webhook.download.fetching.retry import RETRY_AFTER_CAP, RetryPolicy, parse_retry_after
from webhook.download.errors import TransientError

MiB = 1 << 20


def test_parts_are_16_to_64_mib_shrinking_to_the_end_and_tile_the_file() -> None:
    for size, jobs in ((64 * MiB, 16), (80 * MiB + 3, 2), ((2 << 30) - 1, 16), (40 << 30, 8)):
        parts = plan_parts(size, jobs)
        assert parts[0][0] == 0 and parts[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        sizes = [b - a for a, b in parts]
        assert all(MIN_PART // 2 <= n < MAX_PART + MIN_PART // 2 for n in sizes), sizes
    big = [b - a for a, b in plan_parts(2 << 30, 16)]
    assert big[0] == MAX_PART and big[-2] == MIN_PART  # large first, small last: a short tail


def test_journal_is_trusted_only_when_it_matches(tmp_path: Path) -> None:
    p = tmp_path / "w.bin.incomplete.parts"
    size = 80 * MiB
    parts = plan_parts(size, 16)
    assert len(parts) == 5
    Journal(size, parts, '"abc"', [16 * MiB, 5, 0, 0, 0]).save(p)
    j = Journal.load(p, size, need_validator=True)
    assert j is not None and j.filled == [16 * MiB, 5, 0, 0, 0] and j.validator == '"abc"'
    assert Journal.load(p, size + 1, need_validator=True) is None  # another size: another object
    Journal(size, parts, None, [0] * 5).save(p)
    assert Journal.load(p, size, need_validator=True) is None    # no ETag: cannot tell a changed object
    assert Journal.load(p, size, need_validator=False) is not None  # hf: the URL names a commit
    raw = {"version": 2, "size": size, "parts": parts, "validator": "x", "filled": [17 * MiB, 0, 0, 0, 0]}
    p.write_text(json.dumps(raw))
    assert Journal.load(p, size, need_validator=True) is None    # more than a part holds
    p.write_text(json.dumps(dict(raw, filled=[0] * 5, parts=parts[:2] + parts[3:])))
    assert Journal.load(p, size, need_validator=True) is None    # a gap between parts
    p.write_text("{not json")
    assert Journal.load(p, size, need_validator=True) is None


def test_retry_after_forms_and_the_policy_floor() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000") == RETRY_AFTER_CAP
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(date) <= 31
    policy = RetryPolicy(retries=8, backoff=0.01)
    assert policy.delay(1, TransientError("HTTP 503", retry_after=2.0)) >= 2.0
    assert policy.delay(1, TransientError("reset")) <= 0.01
