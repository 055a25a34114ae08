"""Piece picker: random first pieces, then rarest first, then end game. Pure, no I/O.

Pieces are laid out in 16 KiB units; a request covers a run of units up to the block size
the peer allows (16 KiB for ordinary clients, up to a whole piece between meshbed peers),
so peers with different block sizes can share a piece. Availability counts the connected
peers holding each piece; seeds are counted once in ``seeds`` instead of per piece.

Picking is O(1)-ish in the number of pieces (the simulator runs thousands of pickers): each
piece has a bit at a random position (``bit(i)``, drawn once per picker, the random
tie-break), free pieces are kept as one int bit mask per availability level, and a peer is
described by the mask of the pieces it has (``mask_of``), so "the rarest free piece this
peer has" is a few big-int ANDs and a lowest-set-bit.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Callable, Optional, Union

UNIT = 16384
FREE, REQUESTED, RECEIVED = 0, 1, 2
# piece status
P_FREE, P_PARTIAL, P_VERIFYING, P_HAVE = 0, 1, 2, 3
WHOLE_PIECE_MAX = 1 << 20  # a new piece up to this size is asked of one peer whole
ENDGAME_MAX_DUP = 2  # outstanding requests per unit in end game

Buffer = Union[bytes, bytearray, memoryview]


_POW2: list[int] = []
# Shared up to this many pieces (the cache holds ~n²/16 bytes: 1 MiB at 4,096; beyond, each
# picker makes its own, freed with it, so an agent keeps nothing of a big torrent it dropped)
SHARED_POW2_MAX = 4096


def _powers_of_two(n: int) -> list[int]:
    """``[1 << r for r in range(n)]``, the same int objects for every picker up to
    SHARED_POW2_MAX pieces (the simulator runs thousands of pickers; their bit masks are
    what differs, not the bits)."""
    if n > SHARED_POW2_MAX:
        return [1 << r for r in range(n)]
    while len(_POW2) < n:
        _POW2.append(1 << len(_POW2))
    return _POW2


class Partial:
    """A piece being downloaded: unit states, outstanding request counts, received bytes."""

    __slots__ = ("index", "size", "state", "reqs", "missing", "buf", "whole", "contributors",
                 "units_from")

    def __init__(self, index: int, size: int) -> None:
        n = (size + UNIT - 1) // UNIT
        self.index = index
        self.size = size
        self.state = bytearray(n)
        self.reqs = [0] * n
        self.missing = n  # units not yet received
        self.buf: Optional[bytearray] = None
        self.whole: Optional[Buffer] = None  # the piece came as one block: no copy
        self.contributors: dict[object, None] = {}  # ordered: reproducible runs
        # the sender of each unit, once a second peer contributed (None: all from one);
        # a piece that fails its hash then says who sent what (peer/core/blame.py)
        self.units_from: Optional[list[object]] = None

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
        self._open: dict[int, Partial] = {}  # partial pieces with units nobody was asked for
        order = list(range(num_pieces))
        self.rng.shuffle(order)
        self.bits = [0] * num_pieces  # piece -> its bit in masks; position = rank in random order
        # rank -> piece: a bit's piece is _order[bit.bit_length() - 1] (a list of small ints,
        # ~2 KiB, where a dict keyed by the bits took ~20 KiB per picker)
        self._order = order
        pow2 = _powers_of_two(num_pieces)  # shared ints: a picker holds 256 of ~50 bytes each
        for rank, i in enumerate(order):
            self.bits[i] = pow2[rank]
        self.full_mask = (1 << num_pieces) - 1
        self._free_mask = 0  # free pieces, all levels
        self._nfree = 0
        self._levels: list[int] = [0]  # availability (seeds aside) -> mask of free pieces
        for i in range(num_pieces):
            if self.status[i] == P_FREE:
                self._set_free(i)

    # ------------------------------------------------------------------ state
    def has(self, i: int) -> bool:
        return self.status[i] == P_HAVE

    @property
    def complete(self) -> bool:
        return self.have_count == self.n

    @property
    def endgame(self) -> bool:
        return not self._nfree and self.have_count < self.n

    def availability(self, i: int) -> int:
        return self.avail[i] + self.seeds

    def bit(self, i: int) -> int:
        """Piece ``i``'s bit in peer masks."""
        return self.bits[i]

    def pieces_of(self, mask: int) -> Iterator[int]:
        """The pieces of a mask (in bit order)."""
        order = self._order
        while mask:
            low = mask & -mask
            yield order[low.bit_length() - 1]
            mask ^= low

    def mask_of(self, pieces: Iterable[int]) -> int:
        bit = self.bits
        m = 0
        for i in pieces:
            m |= bit[i]
        return m

    # ------------------------------------------------------------ free-piece levels
    def _set_free(self, i: int) -> None:
        b, a, levels = self.bits[i], self.avail[i], self._levels
        while len(levels) <= a:
            levels.append(0)
        levels[a] |= b
        self._free_mask |= b
        self._nfree += 1

    def _unset_free(self, i: int) -> None:
        b = self.bits[i]
        self._levels[self.avail[i]] &= ~b
        self._free_mask &= ~b
        self._nfree -= 1

    def _move(self, i: int, delta: int) -> None:
        """Availability of piece ``i`` changes by ``delta`` (its level, if it is free)."""
        if self.status[i] == P_FREE:
            b, levels = self.bits[i], self._levels
            levels[self.avail[i]] &= ~b
            a = self.avail[i] = self.avail[i] + delta
            while len(levels) <= a:
                levels.append(0)
            levels[a] |= b
        else:
            self.avail[i] += delta

    # ------------------------------------------------------------ availability
    def peer_bitfield(self, pieces: Iterable[int]) -> None:
        move = self._move
        for i in pieces:
            move(i, 1)

    def peer_have(self, i: int) -> None:
        self._move(i, 1)

    def peer_lost(self, pieces: Iterable[int]) -> None:
        avail, move = self.avail, self._move
        for i in pieces:
            if avail[i] > 0:
                move(i, -1)

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
        peer_mask: Optional[int] = None,
        whole_pieces: bool = True,
    ) -> list[tuple[int, int, int]]:
        """Requests (index, begin, length) for one peer, about ``budget`` bytes in total.

        ``peer_has(i)``: the peer holds piece i; ``peer_mask``: the same as a mask of
        ``bit(i)`` (faster; computed from ``peer_has`` when not given). ``busy(i)``: the
        peer already has requests in piece i (end game avoids asking it twice for the same
        blocks). ``duplicates``: may end game ask this peer for blocks already requested
        elsewhere (a callable decides per piece, e.g. only when the copy in flight is late).
        ``whole_pieces``: a new piece (up to WHOLE_PIECE_MAX) is asked for whole even past
        ``budget`` (not for a snubbed peer's one-block probe).
        """
        out: list[tuple[int, int, int]] = []
        units_per_block = max(1, max_block // UNIT)
        left = budget
        status = self.status
        # 1. finish pieces already started
        if self._open:
            for p in list(self._open.values()):
                if left <= 0:
                    return out
                if status[p.index] != P_PARTIAL or not (peer_is_seed or peer_has(p.index)):
                    continue
                left -= self._take_units(p, units_per_block, left, out, FREE)
        # 2. new pieces: random first, then rarest first
        if left > 0 and self._nfree:
            if peer_is_seed:
                mask = self.full_mask
            elif peer_mask is not None:
                mask = peer_mask
            else:
                mask = self.mask_of(i for i in range(self.n) if peer_has(i))
            while left > 0 and self._nfree:
                i = self._choose_new(mask)
                if i is None:
                    break
                self._unset_free(i)
                status[i] = P_PARTIAL
                p = self.partial[i] = self._open[i] = Partial(i, self.piece_size(i))
                # a new piece goes to one peer whole: split over several, it would complete
                # only with the slowest of them, and only then be shared (with small blocks,
                # simulated 1+16: 0.88 split vs 0.97 whole)
                whole = p.size if whole_pieces and p.size <= WHOLE_PIECE_MAX else 0
                left -= self._take_units(p, units_per_block, max(left, whole), out, FREE)
        # 3. end game: all missing pieces are requested; ask for unreceived units again
        if left > 0 and duplicates and not self._nfree:
            for p in list(self.partial.values()):
                if left <= 0:
                    break
                if status[p.index] != P_PARTIAL or not (peer_is_seed or peer_has(p.index)):
                    continue
                if (busy is not None and busy(p.index)) or any(r[0] == p.index for r in out):
                    continue
                if duplicates is not True and not duplicates(p.index):
                    continue
                left -= self._take_units(p, units_per_block, left, out, REQUESTED)
        return out

    def _choose_new(self, mask: int) -> Optional[int]:
        """The free piece the peer has that is rarest (first in our random order on ties);
        in the random start, the first free one in random order."""
        if self.have_count + len(self.partial) < self.random_first:
            m = self._free_mask & mask
        else:
            m = 0
            for level in self._levels:
                m = level & mask
                if m:
                    break
        if not m:
            return None
        return self._order[(m & -m).bit_length() - 1]

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
        if want == FREE and FREE not in state:
            self._open.pop(p.index, None)  # every unit asked for: step 1 skips it
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
                    if self.status[index] == P_PARTIAL:
                        self._open[index] = p
        if p.idle() and self.status[index] == P_PARTIAL:
            # nothing received or asked: give the piece back so rarest-first sees it again
            del self.partial[index]
            self._open.pop(index, None)
            self.status[index] = P_FREE
            self._set_free(index)

    def fresh_bytes(self, index: int, begin: int, length: int) -> int:
        """How many bytes of this range we lack (0: nothing new). Blocks of different
        sizes from different peers overlap in the end game; only the part we lacked is
        useful, the rest is waste."""
        p = self.partial.get(index)
        if p is None or self.status[index] != P_PARTIAL or begin % UNIT:
            return 0
        state = p.state
        end = min(begin + length, p.size)
        fresh = 0
        for u in range(begin // UNIT, min(len(state), (end + UNIT - 1) // UNIT)):
            if state[u] != RECEIVED:
                fresh += min((u + 1) * UNIT, end) - u * UNIT
        return fresh

    def received(self, index: int, begin: int, block: Optional[Buffer], peer: object,
                 length: int = 0) -> bool:
        """Store a block (the caller checked bounds and alignment with ``fresh_bytes``);
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
        contributors = p.contributors
        if peer not in contributors:
            if contributors and block is not None and p.units_from is None:
                first = next(iter(contributors))  # everything so far came from it
                p.units_from = [first if s == RECEIVED else None for s in state]
            contributors[peer] = None
        units_from = p.units_from
        if units_from is not None:
            units_from[u0:u1] = [peer] * (u1 - u0)  # the last copy of a unit is the one kept
        for u in range(u0, u1):
            if reqs[u] > 0:
                reqs[u] -= 1
            if state[u] != RECEIVED:
                state[u] = RECEIVED
                p.missing -= 1
        if p.missing == 0:
            self.status[index] = P_VERIFYING
            self._open.pop(index, None)
            return True
        return False

    def take(self, index: int) -> Partial:
        """The completed piece (its data and contributors); leaves the partial table."""
        return self.partial.pop(index)

    def piece_passed(self, index: int) -> None:
        status = self.status[index]
        if status != P_HAVE:
            if status == P_FREE:
                self._unset_free(index)
            self.status[index] = P_HAVE
            self.have_count += 1
        self.partial.pop(index, None)
        self._open.pop(index, None)

    def piece_failed(self, index: int) -> None:
        """Hash mismatch: the piece is free again, to be fetched from others."""
        self.partial.pop(index, None)
        self._open.pop(index, None)
        if self.status[index] not in (P_HAVE, P_FREE):
            self.status[index] = P_FREE
            self._set_free(index)

    def requested_elsewhere(self, index: int) -> bool:
        p = self.partial.get(index)
        return p is not None and any(p.reqs)
