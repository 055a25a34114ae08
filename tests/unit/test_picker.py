"""Piece picker: random first, rarest first, end game, availability bookkeeping."""

from __future__ import annotations

import random

import pytest

from peer import picker as picker_module
from peer.picker import SHARED_POW2_MAX, UNIT, PiecePicker

PL = 4 * UNIT  # 64 KiB pieces: 4 units each


def make(n: int = 20, have: tuple[int, ...] = (), random_first: int = 4,
         last: int = PL, seed: int = 1) -> PiecePicker:
    return PiecePicker(n, lambda i: last if i == n - 1 else PL, have,
                       rng=random.Random(seed), random_first=random_first)


def everything(i: int) -> bool:
    return True


@pytest.mark.timeout(10)
def test_first_pieces_are_random_not_rarest() -> None:
    firsts = set()
    for seed in range(30):
        p = make(seed=seed)
        p.peer_bitfield(range(20))
        p.peer_bitfield([0])  # piece 0 is the most common; rarity must not matter yet
        reqs = p.pick(everything, False, PL, PL)
        assert len(reqs) == 1
        firsts.add(reqs[0][0])
    assert len(firsts) >= 8  # spread over many pieces, not always the same


@pytest.mark.timeout(10)
def test_rarest_first_after_the_random_start() -> None:
    p = make(have=(10, 11, 12, 13))  # past the random phase
    p.peer_bitfield(range(20))
    p.peer_bitfield(range(20))
    p.peer_bitfield([i for i in range(20) if i != 7])  # piece 7: 2 copies, the rest 3
    reqs = p.pick(everything, False, PL, PL)
    assert [r[0] for r in reqs] == [7]


@pytest.mark.timeout(10)
def test_only_pieces_the_peer_has_and_we_lack() -> None:
    p = make(have=(0, 1, 2, 3))
    peer = {2, 3, 5}
    p.peer_bitfield(peer)
    reqs = p.pick(peer.__contains__, False, PL, 10 * PL)
    assert [r[0] for r in reqs] == [5]
    assert p.pick(peer.__contains__, False, PL, PL) == []  # 5 is fully requested now


@pytest.mark.timeout(10)
def test_requests_cover_the_piece_in_blocks_and_the_short_last_piece() -> None:
    p = make(n=3, have=(0, 1), last=UNIT + 100)
    p.seed_joined()
    reqs = p.pick(everything, True, UNIT, 10 * PL)
    assert reqs == [(2, 0, UNIT), (2, UNIT, 100)]
    # a meshbed peer with big blocks gets a whole piece per request
    q = make(n=3, have=(0, 1))
    q.seed_joined()
    assert q.pick(everything, True, 1 << 20, 10 * PL) == [(2, 0, PL)]


@pytest.mark.timeout(10)
def test_budget_limits_the_pipeline_but_a_new_piece_goes_whole() -> None:
    p = make()
    p.seed_joined()
    reqs = p.pick(everything, True, UNIT, 3 * UNIT)
    assert len({r[0] for r in reqs}) == 1 and sum(r[2] for r in reqs) == PL  # one whole piece
    q = make()
    q.seed_joined()
    reqs = q.pick(everything, True, UNIT, 3 * UNIT, whole_pieces=False)  # a snubbed peer's probe
    assert sum(r[2] for r in reqs) == 3 * UNIT


@pytest.mark.timeout(10)
def test_partial_pieces_are_finished_before_new_ones() -> None:
    p = make(have=(0, 1, 2, 3))
    p.seed_joined()
    first = p.pick(everything, True, UNIT, 2 * UNIT, whole_pieces=False)
    piece = first[0][0]
    assert {r[0] for r in first} == {piece}
    nxt = p.pick(everything, True, UNIT, 2 * UNIT)
    assert {r[0] for r in nxt} == {piece}


@pytest.mark.timeout(10)
def test_block_assembly_completion_and_hash_failure_retry() -> None:
    p = make(n=2, have=(0,))
    p.seed_joined()
    reqs = p.pick(everything, True, UNIT, PL)
    data = bytes(range(256)) * (PL // 256)
    done = [p.received(i, b, data[b:b + ln], "peer-a") for i, b, ln in reqs]
    assert done == [False, False, False, True]
    part = p.take(1)
    assert bytes(part.data()) == data and list(part.contributors) == ["peer-a"]
    p.piece_failed(1)  # bad hash: the piece can be asked for again
    assert p.pick(everything, True, PL, PL) == [(1, 0, PL)]
    assert p.received(1, 0, data, "peer-b")
    assert p.take(1).data() is data  # a whole-piece block is kept without copying
    p.piece_passed(1)
    assert p.complete and p.have_count == 2
    assert p.pick(everything, True, PL, PL) == []


@pytest.mark.timeout(10)
def test_released_requests_go_back_to_the_pool() -> None:
    p = make(have=(0, 1, 2, 3))
    p.seed_joined()
    reqs = p.pick(everything, True, PL, PL)
    (i, b, ln), = reqs
    p.release(i, b, ln)
    assert i not in p.partial
    # the piece is free again; a later pick can take it
    taken: set[int] = set()
    for _ in range(20):
        taken.update(r[0] for r in p.pick(everything, True, PL, PL))
    assert i in taken


@pytest.mark.timeout(10)
def test_end_game_duplicates_outstanding_blocks_once_all_are_requested() -> None:
    p = make(n=2, have=(0,))
    p.seed_joined()
    a = p.pick(everything, True, UNIT, 10 * PL)  # peer A takes every block of piece 1
    assert len(a) == 4 and p.endgame
    busy_a = {1}
    assert p.pick(everything, True, UNIT, 10 * PL, busy_a.__contains__) == []  # not twice to A
    b = p.pick(everything, True, UNIT, 10 * PL, set().__contains__)
    assert sorted(b) == sorted(a)  # peer B asks for the same blocks
    # a block arriving from B: A's copy is no longer wanted
    i, beg, ln = b[0]
    assert p.fresh_bytes(i, beg, ln) > 0
    p.received(i, beg, b"x" * ln, "B")
    assert p.fresh_bytes(i, beg, ln) == 0
    # at most ENDGAME_MAX_DUP outstanding copies of a block
    assert p.pick(everything, True, UNIT, 10 * PL, set().__contains__) == []


@pytest.mark.timeout(10)
def test_availability_follows_bitfields_haves_and_disconnects() -> None:
    p = make(n=4, random_first=0)
    assert p.rarest_copies() == 0
    p.peer_bitfield([0, 1])
    p.peer_have(2)
    assert [p.availability(i) for i in range(4)] == [1, 1, 1, 0]
    p.seed_joined()
    assert [p.availability(i) for i in range(4)] == [2, 2, 2, 1]
    assert p.rarest_copies() == 1
    p.peer_lost([0, 1, 2])
    p.seed_left()
    assert [p.availability(i) for i in range(4)] == [0, 0, 0, 0]
    p.piece_passed(3)
    assert p.replication() == [0, 0, 0, 1]


@pytest.mark.timeout(10)
def test_rarest_pick_breaks_ties_randomly() -> None:
    picks = set()
    for seed in range(20):
        p = make(have=(16, 17, 18, 19), seed=seed)
        p.peer_bitfield(range(20))
        picks.add(p.pick(everything, False, PL, PL)[0][0])
    assert len(picks) >= 5


@pytest.mark.timeout(10)
def test_end_game_duplicates_only_where_the_caller_allows() -> None:
    p = make(n=3, have=(0,))
    p.seed_joined()
    a = p.pick(everything, True, PL, 10 * PL)  # pieces 1 and 2 requested from peer A
    assert sorted(r[0] for r in a) == [1, 2] and p.endgame
    assert p.pick(everything, True, PL, 10 * PL, set().__contains__, duplicates=False) == []
    late = {2}  # only piece 2's copy in flight is late
    b = p.pick(everything, True, PL, 10 * PL, set().__contains__, duplicates=late.__contains__)
    assert b == [(2, 0, PL)]


@pytest.mark.timeout(10)
def test_fresh_bytes_counts_only_the_part_of_an_overlapping_block_we_lack() -> None:
    """End game: peers with different block sizes send overlapping ranges; the overlap
    with what arrived already is waste, not download."""
    p = make(n=2, have=(0,))
    p.seed_joined()
    p.pick(everything, True, UNIT, 10 * PL, whole_pieces=False)
    assert p.fresh_bytes(1, 0, PL) == PL
    p.received(1, UNIT, b"x" * UNIT, "A")  # unit 1 of 4
    assert p.fresh_bytes(1, 0, 2 * UNIT) == UNIT
    assert p.fresh_bytes(1, 0, PL) == 3 * UNIT
    assert p.fresh_bytes(1, UNIT, UNIT) == 0
    assert p.fresh_bytes(1, 1, UNIT) == 0  # misaligned: never merged


def test_pickers_share_their_bit_ints_in_their_own_orders() -> None:
    """Each picker has its own random piece order (the tie-break), but the bits are the
    same int objects in every picker (the simulator runs thousands of pickers)."""
    a = PiecePicker(64, lambda i: UNIT, rng=random.Random(1))
    b = PiecePicker(64, lambda i: UNIT, rng=random.Random(2))
    assert a.bits != b.bits and sorted(a.bits) == [1 << r for r in range(64)]
    assert {id(x) for x in a.bits} == {id(x) for x in b.bits}
    big = PiecePicker(SHARED_POW2_MAX + 1, lambda i: UNIT, rng=random.Random(1))
    assert sorted(big.bits) == [1 << r for r in range(SHARED_POW2_MAX + 1)]
    assert len(picker_module._POW2) <= SHARED_POW2_MAX  # a big torrent's bits are its own
