"""Choking decisions (pure): who gets the regular upload slots and the optimistic one.

Policy "neediest" (default): the interested peers that lack the most pieces, so a
cooperative swarm progresses evenly and finishes together (measured: efficiency 0.92-0.94
vs 0.82-0.90 for reciprocation in bench/engine_swarm.py). Policy "reciprocate": leeching,
the peers we download fastest from; seeding, round robin, so a seed spreads its pieces over
many peers: a peer keeps its slot for ``rotate_after`` seconds, then yields it to the one
choked the longest.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Candidate:
    key: Hashable
    interested: bool  # the peer wants data from us
    rate_from: float  # bytes/s we receive from it
    rate_to: float  # bytes/s we send to it
    unchoked: bool  # currently unchoked by us
    since: float  # time of our last choke/unchoke of it
    connected_at: float
    missing: int = 0  # pieces it still lacks


def regular_unchokes(
    cands: Sequence[Candidate], slots: int, seeding: bool, now: float,
    rotate_after: float = 30.0, policy: str = "reciprocate",
) -> list[Hashable]:
    """Keys of the peers to hold the ``slots`` regular upload slots."""
    wanting = [c for c in cands if c.interested]
    if slots <= 0 or not wanting:
        return []
    if policy == "neediest":
        # cooperative swarm: serve the peers furthest behind so everyone finishes together
        ranked = sorted(wanting, key=lambda c: (-c.missing, c.unchoked, c.since))
        return [c.key for c in ranked[:slots]]
    if not seeding:
        ranked = sorted(wanting, key=lambda c: (c.rate_from, c.rate_to, c.unchoked), reverse=True)
        return [c.key for c in ranked[:slots]]
    keep = [c for c in wanting if c.unchoked and now - c.since < rotate_after]
    keep.sort(key=lambda c: c.since)  # the longest-served first go if too many
    chosen = [c.key for c in keep[-slots:]] if len(keep) > slots else [c.key for c in keep]
    if len(chosen) < slots:
        chosen_set = set(chosen)
        # waiting the longest first: choked peers by when they were choked, expired ones last
        waiting = [c for c in wanting if c.key not in chosen_set]
        waiting.sort(key=lambda c: (c.unchoked, c.since))
        chosen.extend(c.key for c in waiting[: slots - len(chosen)])
    return chosen


def pick_optimistic(
    cands: Sequence[Candidate], exclude: set[Hashable], now: float, rng: random.Random,
    new_for: float = 60.0,
) -> Optional[Hashable]:
    """A random interested peer outside the regular set; new peers weigh 3x (they have
    nothing to reciprocate with yet)."""
    pool = [c for c in cands if c.interested and c.key not in exclude]
    if not pool:
        return None
    weights = [3.0 if now - c.connected_at < new_for else 1.0 for c in pool]
    return rng.choices(pool, weights=weights, k=1)[0].key


# Requests kept in flight toward a peer, in seconds of its rate. 3 s (libtorrent's
# request_queue_time) commits requests long before they are served: peers of a swarm ask
# the seeder for the same rare pieces, and slow peers hold pieces others could send sooner
# (simulated 1+64: efficiency 0.73 -> 0.80 with 1-1.5 s; the link stays busy as long as
# this covers a round trip).
REQUEST_QUEUE_SECONDS = 1.5
# Block size between meshbed peers, in seconds of the peer's rate: a 1 MiB block on a
# 1 mbit share takes 8 s, during which every message behind it on the connection waits
# and a cancel cannot stop it (simulated heterogeneous mesh: 0.73 -> 0.89).
BLOCK_SECONDS = 0.05
# End game: a piece only much slower peers are sending is taken over by an idle peer
# this many times faster.
TAKEOVER_FACTOR = 4.0


def regular_slots(configured: int, have: int, complete: bool) -> int:
    """Regular unchoke slots: a leecher serves at most as many peers as it has pieces (at
    least one). With its first piece split over 8 peers, each copy would take 8x as long
    to exist, and pieces spread by copies (simulated 1+64: 0.80 -> 0.85)."""
    if complete:
        return configured
    return min(configured, max(1, have))


def block_for_rate(rate: float, largest: int, smallest: int, seconds: float = BLOCK_SECONDS) -> int:
    """Request block size for a peer sending ``rate`` bytes/s: ``seconds`` of it as a power
    of two within [smallest, largest]."""
    want = int(rate * seconds)
    if want <= smallest:
        return min(smallest, largest)
    return max(smallest, min(largest, 1 << (want.bit_length() - 1)))


def much_slower(holder_peaks: Sequence[float], mine: float, factor: float = TAKEOVER_FACTOR) -> bool:
    """Should an idle peer sending at ``mine`` (its recent best) take a piece over from the
    peers now sending it to us? Only when it is ``factor`` times faster than each of them."""
    return bool(holder_peaks) and mine > 0 and all(h * factor < mine for h in holder_peaks)


def pipeline_bytes(rate: float, block: int, seconds: float = REQUEST_QUEUE_SECONDS,
                   max_blocks: int = 64, max_bytes: int = 32 << 20) -> int:
    """Bytes to keep requested from a peer: ``seconds`` of its measured rate, at least two
    blocks, at most ``max_blocks`` blocks or ``max_bytes``."""
    cap = min(max_blocks * block, max_bytes)
    return int(max(2 * block, min(rate * seconds, cap)))


class RateMeter:
    """Bytes counter with a rate over a sliding window of ~2 s (ticked once a second)."""

    __slots__ = ("total", "rate", "peak", "_samples", "_first")

    def __init__(self) -> None:
        self.total = 0
        self.rate = 0.0
        self.peak = 0.0  # the best rate lately (10 % less a tick): what the peer can do
        # time, total, time, total ...: flat (a tuple per sample costs ~56 bytes, and the
        # simulator keeps two meters per connection side)
        self._samples: list[float] = []
        self._first: Optional[tuple[float, int]] = None  # (when, bytes) of the first add

    def add(self, n: int, now: Optional[float] = None) -> None:
        if self._first is None and now is not None:
            self._first = (now, self.total + n)
        self.total += n

    def estimate(self, now: float) -> float:
        """The rate; before the first tick measured one, what came after the first
        ``add`` over the time since (a loopback peer should not wait a second to be
        known as fast)."""
        if self.rate or self._first is None:
            return self.rate
        t0, b0 = self._first
        return (self.total - b0) / (now - t0) if now > t0 else 0.0

    def tick(self, now: float, window: float = 2.0) -> None:
        samples = self._samples
        samples.append(now)
        samples.append(self.total)
        while len(samples) > 4 and now - samples[2] >= window:
            del samples[:2]
        t0, b0 = samples[0], samples[1]
        self.rate = (self.total - b0) / (now - t0) if now > t0 else 0.0
        self.peak = max(self.rate, self.peak * 0.9)
