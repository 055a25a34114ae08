"""orchestrator.bounds: the fluid-model bounds with worked numbers."""

from __future__ import annotations

import pytest

from orchestrator.bounds import (
    MAX_CHUNK,
    MIN_CHUNK,
    client_server_bound,
    default_chunk_size,
    lower_bound,
    topology_bounds,
)
from orchestrator.loader import load_topology_text

pytestmark = pytest.mark.timeout(30)
MiB = 1024 * 1024


def test_anchor_1_plus_16_64mib() -> None:
    # ANCHORS.md: seeder up 40 mbit; 16 leechers up 10, down 50 mbit; 64 MiB -> 42.95 s
    # F = 536870912 bit; F/u_s = 13.42; F/d_min = 10.74; N·F/(u_s+Σu_i) = 16F/200e6 = 42.95
    got = lower_bound(64 * MiB, [40_000_000], [10_000_000] * 16, [50_000_000] * 16)
    assert got == pytest.approx(42.95, abs=0.005)
    # a server alone: N·F/u_s = 16 * 536870912 / 40e6 = 214.75 s
    cs = client_server_bound(64 * MiB, [40_000_000], [50_000_000] * 16)
    assert cs == pytest.approx(214.748, abs=0.001)


def test_anchor_1_plus_64_32mib() -> None:
    got = lower_bound(32 * MiB, [40_000_000], [10_000_000] * 64, [50_000_000] * 64)
    assert got == pytest.approx(25.26, abs=0.005)


def test_seeder_term_dominates_with_fast_fetchers() -> None:
    # 1 fetcher with huge links: the seeder's upload is the bottleneck, F/u_s = 8 MiB*8/8e6
    got = lower_bound(8 * MiB, [8_000_000], [1_000_000_000], [1_000_000_000])
    assert got == pytest.approx(8 * MiB * 8 / 8e6)


def test_download_term_dominates() -> None:
    # slow downloader: F/d_min with d_min = 1 mbit
    got = lower_bound(
        1 * MiB, [100_000_000, 100_000_000], [100_000_000, 100_000_000], [1_000_000, 50_000_000]
    )
    assert got == pytest.approx(MiB * 8 / 1e6)


def test_several_seeders_add_up() -> None:
    one = client_server_bound(10 * MiB, [10_000_000], [10**9] * 4)
    two = client_server_bound(10 * MiB, [10_000_000, 10_000_000], [10**9] * 4)
    assert one == pytest.approx(2 * two)  # type: ignore[operator]


def test_uncapped_rates() -> None:
    # everything uncapped: no bound at all
    assert lower_bound(MiB, [None], [None], [None]) is None
    assert client_server_bound(MiB, [None], [None]) is None
    # capped seeder, uncapped fetchers: F/u_s still binds
    assert lower_bound(MiB, [8_000_000], [None], [None]) == pytest.approx(MiB * 8 / 8e6)
    # uncapped seeder, capped fetcher download: F/d_min binds
    assert lower_bound(MiB, [None], [1], [8_000_000]) == pytest.approx(MiB * 8 / 8e6)


def test_no_fetchers_or_seeders() -> None:
    assert lower_bound(MiB, [1_000_000], [], []) is None
    assert lower_bound(MiB, [], [1_000_000], [1_000_000]) is None
    assert client_server_bound(MiB, [1_000_000], []) is None


def test_topology_bounds_swarm_and_client_server() -> None:
    text = """
name: t
strategy: {strategy}
defaults: {{link: {{up: 10mbit, down: 50mbit}}}}
groups:
  seeders: {{count: 1, link: {{up: 40mbit}}}}
  leechers: {{count: 16}}
content:
  movie: {{size: 64MiB, seeders: [seeders]}}
scenario:
  - {{at: 0s, fetch: {{content: movie, by: leechers}}}}
"""
    swarm = topology_bounds(load_topology_text(text.format(strategy="swarm")))["movie"]
    assert swarm["lower_bound_seconds"] == pytest.approx(42.95, abs=0.005)
    assert swarm["client_server_bound_seconds"] == pytest.approx(214.748, abs=0.001)
    assert (swarm["fetchers"], swarm["seeders"], swarm["size"]) == (16, 1, 64 * MiB)
    assert swarm["chunks"] * swarm["chunk_size"] == 64 * MiB
    cs = topology_bounds(load_topology_text(text.format(strategy="client-server")))["movie"]
    assert cs["lower_bound_seconds"] == cs["client_server_bound_seconds"]
    assert cs["lower_bound_seconds"] == pytest.approx(214.748, abs=0.001)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, MIN_CHUNK),
        (1 * MiB, 16 * 1024),
        (64 * MiB, 128 * 1024),
        (1024 * MiB, 512 * 1024),
        (4096 * MiB, MiB),
        (2**50, MAX_CHUNK),
    ],
)
def test_default_chunk_size(size: int, expected: int) -> None:
    assert default_chunk_size(size) == expected  # the peer's metainfo rule
