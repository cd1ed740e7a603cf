"""The daemon's pieces finish in any order; the downloader writes a file in
order (sources/dragonfly.py `_ordered`)."""

from __future__ import annotations

import pytest

from webhook.download.errors import TransientError
from webhook.download.sources import dragonfly
from webhook.download.sources.dragonfly import _ordered

DATA = bytes(range(256)) * 40  # 10240 bytes
PIECE = 1000


def pieces(order: list[int]) -> list[tuple[int, bytes]]:
    return [(i * PIECE, DATA[i * PIECE:(i + 1) * PIECE]) for i in order]


@pytest.mark.parametrize("order", [list(range(11)), [3, 1, 0, 2, 10, 9, 4, 5, 8, 7, 6], list(reversed(range(11)))])
def test_any_order_comes_out_in_file_order(order: list[int]) -> None:
    assert b"".join(_ordered(iter(pieces(order)), 0, "w")) == DATA


def test_a_resume_skips_what_is_on_disk_and_cuts_the_piece_it_falls_in() -> None:
    assert b"".join(_ordered(iter(pieces([5, 0, 2, 1, 3, 4, 6, 7, 8, 9, 10])), 2500, "w")) == DATA[2500:]


def test_a_missing_piece_ends_the_stream_as_transient() -> None:
    with pytest.raises(TransientError, match="piece at 3000 missing"):
        b"".join(_ordered(iter(pieces([0, 1, 2, 4, 5])), 0, "w"))


def test_later_pieces_held_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dragonfly, "MAX_AHEAD", 3 * PIECE)
    out = []
    with pytest.raises(TransientError, match="the piece at 0 is late"):
        for chunk in _ordered(iter(pieces([1, 2, 3, 4, 5, 0])), 0, "w"):
            out.append(chunk)
    assert out == []
