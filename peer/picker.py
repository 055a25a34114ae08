"""Piece picker: random first pieces, then rarest first, then end game. Pure, no I/O.

Pieces are laid out in 16 KiB units; a request covers a run of units up to the block size
the peer allows (16 KiB for ordinary clients, up to a whole piece between meshbed peers),
so peers with different block sizes can share a piece. Availability counts the connected
peers holding each piece; seeds are counted once in ``seeds`` instead of per piece.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Callable, Optional, Union

UNIT = 16384
FREE, REQUESTED, RECEIVED = 0, 1, 2
# piece status
P_FREE, P_PARTIAL, P_VERIFYING, P_HAVE = 0, 1, 2, 3
ENDGAME_MAX_DUP = 2  # outstanding requests per unit in end game

Buffer = Union[bytes, bytearray, memoryview]


class Partial:
    """A piece being downloaded: unit states, outstanding request counts, received bytes."""

    __slots__ = ("index", "size", "state", "reqs", "missing", "buf", "whole", "contributors")

    def __init__(self, index: int, size: int) -> None:
        n = (size + UNIT - 1) // UNIT
        self.index = index
        self.size = size
        self.state = bytearray(n)
        self.reqs = [0] * n
        self.missing = n  # units not yet received
        self.buf: Optional[bytearray] = None
        self.whole: Optional[Buffer] = None  # the piece came as one block: no copy
        self.contributors: set[object] = set()

    def idle(self) -> bool:
        return self.missing == len(self.state) and not any(self.reqs)

    def data(self) -> Optional[Buffer]:
        """The piece's bytes; None when it came as virtual payload (simulation)."""
        if self.whole is not None:
            return self.whole
        return self.buf


class PiecePicker:
    def __init__(
        self,
        num_pieces: int,
        piece_size: Callable[[int], int],
        have: Iterable[int] = (),
        rng: Optional[random.Random] = None,
        random_first: int = 4,
    ) -> None:
        self.n = num_pieces
        self.piece_size = piece_size
        self.rng = rng or random.Random()
        self.random_first = random_first
        self.status = bytearray(num_pieces)
        self.avail = [0] * num_pieces
        self.seeds = 0
        self.have_count = 0
        for i in have:
            if self.status[i] != P_HAVE:
                self.status[i] = P_HAVE
                self.have_count += 1
        self.partial: dict[int, Partial] = {}
        free = [i for i in range(num_pieces) if self.status[i] == P_FREE]
        self.rng.shuffle(free)
        self._free = free  # random order gives the random tie-break for free

    # ------------------------------------------------------------------ state
    def has(self, i: int) -> bool:
        return self.status[i] == P_HAVE

    @property
    def complete(self) -> bool:
        return self.have_count == self.n

    @property
    def endgame(self) -> bool:
        return not self._free and self.have_count < self.n

    def availability(self, i: int) -> int:
        return self.avail[i] + self.seeds

    # ------------------------------------------------------------ availability
    def peer_bitfield(self, pieces: Iterable[int]) -> None:
        avail = self.avail
        for i in pieces:
            avail[i] += 1

    def peer_have(self, i: int) -> None:
        self.avail[i] += 1

    def peer_lost(self, pieces: Iterable[int]) -> None:
        avail = self.avail
        for i in pieces:
            if avail[i] > 0:
                avail[i] -= 1

    def seed_joined(self) -> None:
        self.seeds += 1

    def seed_left(self) -> None:
        if self.seeds > 0:
            self.seeds -= 1

    def rarest_copies(self) -> int:
        """Min copies over all pieces among connected peers, counting our own copy."""
        if not self.n:
            return 0
        status, avail = self.status, self.avail
        return self.seeds + min(
            avail[i] + (1 if status[i] == P_HAVE else 0) for i in range(self.n)
        )

    def replication(self) -> list[int]:
        """copies (ours included) per piece."""
        status, avail, seeds = self.status, self.avail, self.seeds
        return [avail[i] + seeds + (1 if status[i] == P_HAVE else 0) for i in range(self.n)]

    # ------------------------------------------------------------------ picking
    def pick(
        self,
        peer_has: Callable[[int], bool],
        peer_is_seed: bool,
        max_block: int,
        budget: int,
        busy: Optional[Callable[[int], bool]] = None,
        duplicates: Union[bool, Callable[[int], bool]] = True,
    ) -> list[tuple[int, int, int]]:
        """Requests (index, begin, length) for one peer, about ``budget`` bytes in total.

        ``peer_has(i)``: the peer holds piece i. ``busy(i)``: the peer already has
        requests in piece i (end game avoids asking it twice for the same blocks).
        ``duplicates``: may end game ask this peer for blocks already requested elsewhere
        (a callable decides per piece, e.g. only when the copy in flight is late).
        """
        out: list[tuple[int, int, int]] = []
        units_per_block = max(1, max_block // UNIT)
        left = budget
        # 1. finish pieces already started
        for p in list(self.partial.values()):
            if left <= 0:
                return out
            if self.status[p.index] != P_PARTIAL or not (peer_is_seed or peer_has(p.index)):
                continue
            left -= self._take_units(p, units_per_block, left, out, FREE)
        # 2. new pieces: random first, then rarest first
        while left > 0 and self._free:
            i = self._choose_new(peer_has, peer_is_seed)
            if i is None:
                break
            self._free.remove(i)
            self.status[i] = P_PARTIAL
            p = self.partial[i] = Partial(i, self.piece_size(i))
            left -= self._take_units(p, units_per_block, left, out, FREE)
        # 3. end game: all missing pieces are requested; ask for unreceived units again
        if left > 0 and duplicates and not self._free:
            for p in list(self.partial.values()):
                if left <= 0:
                    break
                if self.status[p.index] != P_PARTIAL or not (peer_is_seed or peer_has(p.index)):
                    continue
                if (busy is not None and busy(p.index)) or any(r[0] == p.index for r in out):
                    continue
                if duplicates is not True and not duplicates(p.index):
                    continue
                left -= self._take_units(p, units_per_block, left, out, REQUESTED)
        return out

    def _choose_new(self, peer_has: Callable[[int], bool], peer_is_seed: bool) -> Optional[int]:
        free = self._free
        if self.have_count + len(self.partial) < self.random_first:
            for i in free:
                if peer_is_seed or peer_has(i):
                    return i
            return None
        avail, seeds = self.avail, self.seeds
        floor = seeds + (0 if peer_is_seed else 1)  # lowest availability possible here
        best: Optional[int] = None
        best_a = 1 << 30
        for i in free:
            a = avail[i]
            if a + seeds < best_a and (peer_is_seed or peer_has(i)):
                best, best_a = i, a + seeds
                if best_a <= floor:
                    break
        return best

    def _take_units(
        self, p: Partial, per_block: int, budget: int, out: list[tuple[int, int, int]],
        want: int,
    ) -> int:
        """Request runs of units in state ``want``; return the bytes requested."""
        state, reqs = p.state, p.reqs
        n = len(state)
        taken = 0
        u = 0
        while u < n and taken < budget:
            if state[u] != want or (want == REQUESTED and reqs[u] >= ENDGAME_MAX_DUP):
                u += 1
                continue
            start = u
            while (
                u < n and u - start < per_block and state[u] == want
                and (want != REQUESTED or reqs[u] < ENDGAME_MAX_DUP)
            ):
                state[u] = REQUESTED
                reqs[u] += 1
                u += 1
            begin = start * UNIT
            length = min(u * UNIT, p.size) - begin
            out.append((p.index, begin, length))
            taken += length
        return taken

    # ------------------------------------------------------------------ events
    def release(self, index: int, begin: int, length: int) -> None:
        """A request ended without data (choke, reject, cancel, disconnect, snub)."""
        p = self.partial.get(index)
        if p is None or begin % UNIT:
            return
        state, reqs = p.state, p.reqs
        for u in range(begin // UNIT, min(len(state), (begin + length + UNIT - 1) // UNIT)):
            if reqs[u] > 0:
                reqs[u] -= 1
                if reqs[u] == 0 and state[u] == REQUESTED:
                    state[u] = FREE
        if p.idle() and self.status[index] == P_PARTIAL:
            # nothing received or asked: give the piece back so rarest-first sees it again
            del self.partial[index]
            self.status[index] = P_FREE
            self._free.insert(self.rng.randrange(len(self._free) + 1), index)

    def wanted(self, index: int, begin: int, length: int) -> bool:
        """Would a block with this range add data we lack?"""
        p = self.partial.get(index)
        if p is None or self.status[index] != P_PARTIAL or begin % UNIT:
            return False
        state = p.state
        return any(
            state[u] != RECEIVED
            for u in range(begin // UNIT, min(len(state), (begin + length + UNIT - 1) // UNIT))
        )

    def received(self, index: int, begin: int, block: Optional[Buffer], peer: object,
                 length: int = 0) -> bool:
        """Store a block (the caller checked bounds and alignment with ``wanted``);
        ``block`` None: a virtual payload of ``length`` bytes (simulation), nothing stored.

        Returns True when the piece is now complete: it goes to "verifying"; fetch its
        bytes with :meth:`take`.
        """
        p = self.partial[index]
        if block is not None:
            length = len(block)
        u0, u1 = begin // UNIT, min(len(p.state), (begin + length + UNIT - 1) // UNIT)
        if block is None:
            pass
        elif begin == 0 and length == p.size and p.missing == len(p.state):
            p.whole = block
        else:
            if p.buf is None:
                p.buf = bytearray(p.size)
                if p.whole is not None:
                    p.buf[:] = p.whole
                    p.whole = None
            p.buf[begin:begin + length] = block
        state, reqs = p.state, p.reqs
        for u in range(u0, u1):
            if reqs[u] > 0:
                reqs[u] -= 1
            if state[u] != RECEIVED:
                state[u] = RECEIVED
                p.missing -= 1
        p.contributors.add(peer)
        if p.missing == 0:
            self.status[index] = P_VERIFYING
            return True
        return False

    def take(self, index: int) -> Partial:
        """The completed piece (its data and contributors); leaves the partial table."""
        return self.partial.pop(index)

    def piece_passed(self, index: int) -> None:
        if self.status[index] != P_HAVE:
            self.status[index] = P_HAVE
            self.have_count += 1
        self.partial.pop(index, None)

    def piece_failed(self, index: int) -> None:
        """Hash mismatch: the piece is free again, to be fetched from others."""
        self.partial.pop(index, None)
        if self.status[index] != P_HAVE:
            self.status[index] = P_FREE
            self._free.insert(self.rng.randrange(len(self._free) + 1), index)

    def requested_elsewhere(self, index: int) -> bool:
        p = self.partial.get(index)
        return p is not None and any(p.reqs)
