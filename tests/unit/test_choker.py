"""Choking decisions and pipeline sizing (pure functions)."""

from __future__ import annotations

import random

import pytest

from peer.choker import (
    Candidate,
    RateMeter,
    block_for_rate,
    much_slower,
    pick_optimistic,
    pipeline_bytes,
    regular_slots,
    regular_unchokes,
)


def cand(key: str, interested: bool = True, rate_from: float = 0.0, rate_to: float = 0.0,
         unchoked: bool = False, since: float = 0.0, connected_at: float = 0.0,
         missing: int = 0) -> Candidate:
    return Candidate(key, interested, rate_from, rate_to, unchoked, since, connected_at, missing)


@pytest.mark.timeout(10)
def test_leecher_unchokes_the_fastest_uploaders_to_it() -> None:
    cands = [cand("a", rate_from=10), cand("b", rate_from=50), cand("c", rate_from=30),
             cand("d", rate_from=99, interested=False), cand("e", rate_from=20)]
    assert regular_unchokes(cands, 3, seeding=False, now=100) == ["b", "c", "e"]


@pytest.mark.timeout(10)
def test_no_slots_or_no_interest_means_nobody() -> None:
    assert regular_unchokes([cand("a")], 0, seeding=False, now=0) == []
    assert regular_unchokes([cand("a", interested=False)], 4, seeding=True, now=0) == []


@pytest.mark.timeout(10)
def test_seed_round_robin_rotates_long_served_peers_out() -> None:
    now = 100.0
    cands = [
        cand("old", unchoked=True, since=now - 40),  # served for 40 s: must yield
        cand("fresh", unchoked=True, since=now - 5),  # keeps its slot
        cand("waiting-long", since=now - 50),
        cand("waiting-short", since=now - 2),
    ]
    chosen = regular_unchokes(cands, 2, seeding=True, now=now, rotate_after=30)
    assert chosen == ["fresh", "waiting-long"]


@pytest.mark.timeout(10)
def test_seed_round_robin_keeps_slots_full_when_few_wait() -> None:
    now = 100.0
    cands = [cand("old", unchoked=True, since=now - 40), cand("x", unchoked=True, since=now - 1)]
    assert set(regular_unchokes(cands, 2, seeding=True, now=now)) == {"old", "x"}


@pytest.mark.timeout(10)
def test_optimistic_unchoke_is_outside_the_regular_set_and_prefers_newcomers() -> None:
    rng = random.Random(3)
    cands = [cand("reg"), cand("old", connected_at=0), cand("new", connected_at=95),
             cand("bored", interested=False, connected_at=99)]
    picks = [pick_optimistic(cands, {"reg"}, now=100, rng=rng) for _ in range(400)]
    assert set(picks) == {"old", "new"}
    assert picks.count("new") > 2 * picks.count("old") * 0.8
    assert pick_optimistic([cand("reg")], {"reg"}, now=1, rng=rng) is None


@pytest.mark.timeout(10)
def test_pipeline_is_a_second_and_a_half_of_rate_within_bounds() -> None:
    block = 16384
    assert pipeline_bytes(0, block) == 2 * block
    assert pipeline_bytes(250_000, block) == 375_000
    assert pipeline_bytes(1_000_000, block) == 64 * block
    assert pipeline_bytes(1e9, block) == 64 * block
    assert pipeline_bytes(1e9, 1 << 20) == 32 << 20


@pytest.mark.timeout(10)
def test_rate_meter_windows_over_two_seconds() -> None:
    m = RateMeter()
    m.tick(0.0)
    m.add(1000)
    m.tick(1.0)
    assert m.rate == pytest.approx(1000)
    m.add(3000)
    m.tick(2.0)
    assert m.rate == pytest.approx(2000)
    m.tick(3.0)
    m.tick(4.0)
    assert m.rate == pytest.approx(0)
    assert m.total == 4000


@pytest.mark.timeout(10)
def test_neediest_policy_serves_the_peers_furthest_behind() -> None:
    cands = [cand("almost", missing=2, rate_from=100), cand("behind", missing=90),
             cand("middle", missing=40), cand("done", missing=0, interested=False)]
    for seeding in (False, True):
        assert regular_unchokes(cands, 2, seeding=seeding, now=0, policy="neediest") == [
            "behind", "middle"]


@pytest.mark.timeout(10)
def test_a_leecher_serves_no_more_peers_than_it_has_pieces() -> None:
    assert regular_slots(8, have=0, complete=False) == 1  # still one: the optimistic rule aside
    assert regular_slots(8, have=3, complete=False) == 3
    assert regular_slots(8, have=200, complete=False) == 8
    assert regular_slots(8, have=0, complete=True) == 8  # a seed (have counts nothing here)


@pytest.mark.timeout(10)
def test_blocks_are_a_twentieth_of_a_second_of_rate_as_a_power_of_two() -> None:
    small, large = 16384, 1 << 20
    assert block_for_rate(0, large, small) == small
    assert block_for_rate(125_000, large, small) == small  # 1 mbit: 6 KB a 20th of a second
    assert block_for_rate(1_500_000, large, small) == 65536  # 75 KB -> 64 KiB
    assert block_for_rate(100e6, large, small) == large  # loopback: as large as agreed
    assert block_for_rate(100e6, small, small) == small  # a BitTorrent client: 16 KiB always
    assert block_for_rate(100e6, 8192, 8192) == 8192  # pieces smaller than a block


@pytest.mark.timeout(10)
def test_end_game_takes_over_only_from_peers_four_times_slower() -> None:
    assert much_slower([100.0, 200.0], mine=1000.0)
    assert not much_slower([100.0, 300.0], mine=1000.0)  # one holder is fast enough
    assert not much_slower([], mine=1000.0)  # nobody is sending it: nothing to take over
    assert not much_slower([0.0], mine=0.0)  # our own rate unknown: no guess
    assert much_slower([0.0], mine=10.0)  # a holder that sends nothing


@pytest.mark.timeout(10)
def test_rate_meter_peak_holds_the_best_rate_and_fades() -> None:
    m = RateMeter()
    m.tick(0.0)
    m.add(1000)
    m.tick(1.0)
    assert m.peak == m.rate == 1000.0
    m.tick(2.0)
    m.tick(3.0)  # nothing more came: the rate falls to 0 at once, the peak by 10 % a tick
    assert m.rate == 0.0 and m.peak == pytest.approx(1000.0 * 0.9 ** 2)
