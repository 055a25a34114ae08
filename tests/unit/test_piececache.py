"""The upload cache of whole pieces (peer/piececache.py): least recently used out first,
never more than its bytes, blocks cut with the store's bounds check."""

from __future__ import annotations

import pytest

from peer.piececache import PieceCache, block_of


def test_least_recently_used_piece_goes_first_and_size_stays_bounded() -> None:
    c = PieceCache(max_bytes=300)
    for i in range(3):
        c.put(i, bytes([i]) * 100)
    assert c.get(0) == b"\x00" * 100  # 0 is now the most recent
    c.put(3, b"\x03" * 100)
    assert c.get(1) is None  # the least recent went
    assert [c.get(i) is not None for i in (0, 2, 3)] == [True, True, True]
    assert c.size == 300
    assert (c.hits, c.misses) == (4, 1)


def test_a_piece_larger_than_the_cache_is_not_kept_and_replacing_keeps_the_count() -> None:
    c = PieceCache(max_bytes=100)
    assert not c.fits(101) and c.fits(100) and not c.fits(0)
    c.put(0, b"x" * 101)
    assert c.get(0) is None and c.size == 0
    c.put(1, b"a" * 60)
    c.put(1, b"b" * 60)  # the same piece again: counted once
    assert c.size == 60 and c.get(1) == b"b" * 60
    c.put(2, b"c" * 60)  # does not fit beside 1: 1 goes
    assert c.get(1) is None and c.size == 60
    c.clear()
    assert c.size == 0 and c.get(2) is None


def test_block_of_checks_bounds_like_the_store() -> None:
    piece = bytes(range(256)) * 4
    assert block_of(piece, 0, 16, 32) == piece[16:48]
    assert block_of(piece, 0, 0, 1024) == piece
    for begin, length in ((1000, 25), (-1, 4), (0, 0)):
        with pytest.raises(ValueError, match="outside piece 0"):
            block_of(piece, 0, begin, length)
