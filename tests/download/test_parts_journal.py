"""How files are cut into parts, the part journal's checks, and Retry-After parsing."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path

from webhook.download.parts import MAX_PART, MIN_PART, Journal, part_size_for, split
from webhook.download.retry import RETRY_AFTER_CAP, RetryPolicy, parse_retry_after
from webhook.download.errors import TransientError

MiB = 1 << 20


def test_part_sizes_are_16_to_64_mib_and_tile_the_file() -> None:
    assert part_size_for(64 * MiB) == MIN_PART
    assert part_size_for(1 << 30) == 32 * MiB
    assert part_size_for(40 << 30) == MAX_PART
    for size in (64 * MiB, 80 * MiB + 3, (2 << 30) - 1):
        parts = split(size, part_size_for(size))
        assert parts[0][0] == 0 and parts[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_journal_is_trusted_only_when_it_matches(tmp_path: Path) -> None:
    p = tmp_path / "w.bin.incomplete.parts"
    size = 80 * MiB
    Journal(size, 16 * MiB, '"abc"', [16 * MiB, 5, 0, 0, 0]).save(p)
    j = Journal.load(p, size, need_validator=True)
    assert j is not None and j.filled == [16 * MiB, 5, 0, 0, 0] and j.validator == '"abc"'
    assert Journal.load(p, size + 1, need_validator=True) is None  # another size: another object
    Journal(size, 16 * MiB, None, [0] * 5).save(p)
    assert Journal.load(p, size, need_validator=True) is None    # no ETag: cannot tell a changed object
    assert Journal.load(p, size, need_validator=False) is not None  # hf: the URL names a commit
    p.write_text(json.dumps({"version": 1, "size": size, "part_size": 16 * MiB, "validator": "x",
                             "filled": [17 * MiB, 0, 0, 0, 0]}))
    assert Journal.load(p, size, need_validator=True) is None    # more than a part holds
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
