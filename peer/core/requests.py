"""Request scheduling for one torrent: pipelines, end game, snubs, choke bookkeeping (pure).

:class:`RequestScheduler` decides what to ask each peer for and when requests in flight
must be given back to the picker (choke, reject, snub) so other peers, or the same peer
later, can serve them. It sends through its :class:`peer.core.swarm.SwarmCore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Union

from peer import wire
from peer.choker import block_for_rate, much_slower, pipeline_bytes
from peer.core.actions import Timer

if TYPE_CHECKING:
    from peer.core.peerstate import Key, PeerState
    from peer.core.swarm import SwarmCore

SNUB_SECONDS = 30.0
# A fast-extension peer that choked us must reject what it will not send (BEP 6); requests
# neither served nor rejected this long after the choke are given back (and cancelled).
CHOKE_GRACE_SECONDS = 5.0
INITIAL_RATE_GUESS = (1 << 20) / 3  # bytes/s before a rate is measured: ~1 MiB in flight
ENDGAME_OVERDUE = 2.0  # end game duplicates only requests this many seconds overdue
MAX_VERIFY_BACKLOG = 64 << 20  # bytes received but not yet hashed: stop requesting beyond
REFILL = "refill"  # timer token: top up every pipeline after the current burst


class RequestScheduler:
    def __init__(self, core: SwarmCore) -> None:
        self.core = core
        n = core.num_pieces
        self.piece_started: dict[int, float] = {}
        self.requested = bytearray(n)  # 1 = asked while missing, 2 = asked while verified
        self.eta: dict[int, float] = {}  # piece -> when its requested blocks are due
        self._refill_pending = False

    def fill(self, c: PeerState, now: float) -> None:
        """Top up the request pipeline toward ``c``."""
        core = self.core
        picker = core.picker
        if c.closed or c.peer_choking or not c.am_interested or picker.have_count == picker.n:
            return
        if core.verify_backlog > MAX_VERIFY_BACKLOG:
            return
        rate = c.rate_from.estimate(now)
        if not rate:  # nothing measured yet: guess 1 MiB in flight, like a TCP initial window
            rate = INITIAL_RATE_GUESS
        block = block_for_rate(rate, min(c.block, core.piece_length), min(wire.BLOCK, core.piece_length),
                               core.config.block_seconds)
        endgame = picker.endgame
        if c.snubbed and not endgame:
            # one block at a time, never none: a snubbed peer may be the only source
            # (client-server), and only a delivered block clears the snub
            room = block - c.out_bytes
        else:
            room = pipeline_bytes(rate, block) - c.out_bytes
        if room < block // 2:
            return
        mask = c.pmask & ~c.rejected if c.rejected else c.pmask
        bit_of = picker.bits

        def peer_has(i: int) -> bool:
            return bool(mask & bit_of[i])

        busy = c.busy_pieces
        # End game: only a peer with nothing else in flight duplicates others' requests, and
        # only for pieces whose copy in flight is overdue: every duplicate costs some
        # sender's upload, which the rest of the swarm needs (measured: eager duplicates
        # wasted ~10 % of all uploads in a 1+32 swarm; a duplicate that loses the race
        # still arrives whole, the cancel comes too late).
        duplicates: Union[bool, Callable[[int], bool]] = False
        eta = self.eta
        if not c.outstanding and endgame:
            if c.rate_from.peak:
                self._take_over_from_slower(c, mask)
            late = now - ENDGAME_OVERDUE

            def duplicates(i: int) -> bool:  # noqa: F811
                due = eta.get(i)
                return due is None or due < late

        reqs = picker.pick(peer_has, c.is_seed and not c.rejected, block, room, busy.__contains__,
                           duplicates=duplicates, peer_mask=mask, whole_pieces=not c.snubbed)
        if not reqs:
            return
        if not c.outstanding:
            c.last_block = now
        started, requested = self.piece_started, self.requested
        request = wire.Request
        msgs: list[wire.Message] = []
        for r in reqs:
            c.add_request(r, now)
            if r[0] not in started:
                started[r[0]] = now
                # 2 = asked for a piece already verified here (counted as redownloaded)
                requested[r[0]] = 2 if picker.has(r[0]) else 1
            msgs.append(request(*r))
        # when the last of these should arrive: queued bytes at the measured rate
        due = now + c.out_bytes / rate
        for r in reqs:
            if duplicates is not False and r[0] in eta:
                eta[r[0]] = min(eta[r[0]], due)  # a second copy: due when the first lands
            elif eta.get(r[0], 0.0) < due:
                eta[r[0]] = due
        core.send(c, msgs)

    def _take_over_from_slower(self, c: PeerState, mask: int) -> None:
        """End game, ``c`` idle: the pieces it has that only much slower peers are sending
        us are withdrawn from them, so ``c`` is asked instead (a 256 KiB piece at a slow
        peer's 0.5 mbit share holds the download up ~4 s, and end-game duplicates are
        capped per block: simulated heterogeneous mesh 0.77 -> 0.80)."""
        core = self.core
        bits = core.picker.bits
        mine = c.rate_from.peak
        for i in list(core.picker.partial):
            if i in c.busy_pieces or not mask & bits[i]:
                continue
            holders = [h for h in core.peers.values() if i in h.busy_pieces]
            if much_slower([h.rate_from.peak for h in holders], mine):
                for h in holders:
                    self.cancel(h, [k for k in h.outstanding if k[0] == i])

    def fill_all(self, now: float, but: object = None) -> None:
        for c in list(self.core.peers.values()):
            if c is not but:
                self.fill(c, now)

    def refill_soon(self, now: float) -> None:
        """Top up every pipeline once, after the current burst of messages."""
        if not self._refill_pending:
            self._refill_pending = True
            self.core.emit(Timer(now, REFILL))

    def on_refill(self, now: float) -> None:
        self._refill_pending = False
        if not self.core.closing:
            self.fill_all(now)

    def release(self, keys: list[Key]) -> None:
        release = self.core.picker.release
        for key in keys:
            release(*key)

    def release_all(self, c: PeerState, now: float) -> None:
        """``c`` will not serve what we asked (a choke without BEP 6): ask others."""
        self.release(c.drop_requests())
        self.fill_all(now, but=c)

    def cancel(self, c: PeerState, keys: list[Key]) -> None:
        """Withdraw our requests ``keys`` from ``c`` and give them back to the picker."""
        msgs: list[wire.Message] = []
        release = self.core.picker.release
        for key in keys:
            if c.take_request(key):
                msgs.append(wire.Cancel(*key))
                release(*key)
        self.core.send(c, msgs)

    def forget_piece(self, index: int) -> None:
        self.piece_started.pop(index, None)
        self.eta.pop(index, None)

    def check(self, c: PeerState, now: float) -> None:
        """Once a second per peer: requests a choke left unanswered, snubs."""
        if not c.outstanding:
            return
        if c.fast and now - c.choked_at > self._choke_grace(c):
            # BEP 6: a choking peer rejects what it will not send. Requests from before its
            # last choke that it neither served nor rejected (an unclean peer) are dropped
            # there: ask again rather than hold the blocks until the snub timer.
            old = c.requests_older_than(c.choked_at)
            if old:
                self.cancel(c, old)
                self.fill_all(now)
        if not c.peer_choking and c.outstanding and now - c.last_block > SNUB_SECONDS:
            if c.snubbed:
                # its one-block probe failed too: start over on a new connection (a stuck
                # connection would otherwise stall a fetcher whose only source it is)
                self.core.close_peer(c, "snubbed")
                return
            c.snubbed = True
            self.cancel(c, list(c.outstanding))
            self.fill_all(now)

    @staticmethod
    def _choke_grace(c: PeerState) -> float:
        """Time for what may still be on its way after a choke (a 1 MiB block on a slow link)."""
        rate = c.rate_from.rate or c.rate_at_choke  # it decays to 0 while choked
        if not rate:  # nothing was flowing: nothing is on its way
            return CHOKE_GRACE_SECONDS
        return min(SNUB_SECONDS, max(CHOKE_GRACE_SECONDS, 2.0 * c.out_bytes / rate))

    def endgame_tick(self, now: float) -> None:
        if self.core.picker.endgame:  # idle peers may now take over overdue end-game blocks
            for c in list(self.core.peers.values()):
                if not c.outstanding:
                    self.fill(c, now)
