"""Choking decisions and pipeline sizing (pure functions)."""

from __future__ import annotations

import random

import pytest

from peer.choker import Candidate, RateMeter, pick_optimistic, pipeline_bytes, regular_unchokes


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
def test_pipeline_is_three_seconds_of_rate_within_bounds() -> None:
    block = 16384
    assert pipeline_bytes(0, block) == 2 * block
    assert pipeline_bytes(250_000, block) == 750_000
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
