"""One torrent seen by one agent, without I/O: events in, actions out.

The drivers (the asyncio agent, the simulator) feed :class:`SwarmCore` events (a peer
connected, a message decoded, a block received, a piece verified, a timer due, a tick)
with the time they happened, and carry out the actions it queues (send, serve, close, ban,
dial, verify, timer). See docs/engine-core.md.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any, Callable, Optional, Union

from peer import extensions as ext
from peer import wire
from peer.choker import BLOCK_SECONDS, RateMeter
from peer.core import admission
from peer.core.actions import (
    Action,
    Ban,
    Broadcast,
    Close,
    Completed,
    PieceTime,
    Rejected,
    Send,
    Serve,
    Verify,
)
from peer.core.admission import MAX_UNPROVEN_PER_IP, RACE_WINDOW, STALE_SECONDS, vouched_addr
from peer.core.bans import BanList
from peer.core.blame import Blame
from peer.core.choking import Choking
from peer.core.errors import ProtocolError
from peer.core.identity import MeshIdentity
from peer.core.peering import Addr, KnownPeer, Peering
from peer.core.peerstate import PeerState
from peer.core.requests import MAX_VERIFY_BACKLOG, REFILL, RequestScheduler
from peer.metadata import MetadataServer
from peer.picker import P_HAVE, PiecePicker

KEEPALIVE_SECONDS = 60.0
IDLE_SECONDS = 120.0
# Requests a peer may have waiting with us (the reqq we advertise: libtorrent's
# max_allowed_in_request_queue). Beyond it a request is rejected (BEP 6) or dropped, as
# libtorrent does; only a peer that keeps sending far more (MAX_EXCESS_REQUESTS) is cut off.
MAX_QUEUED_REQUESTS = 2000
MAX_EXCESS_REQUESTS = 10 * MAX_QUEUED_REQUESTS
Buffer = Union[bytes, bytearray, memoryview]


@dataclass
class CoreConfig:
    upload_slots: int = 8  # regular unchoke slots (+1 optimistic)
    choke_policy: str = "neediest"  # or "reciprocate" (see peer/choker.py)
    max_peers: int = 50  # connections per torrent we open or accept
    max_dials: int = 8  # connection attempts in flight per torrent
    max_known: int = 1000  # addresses remembered per torrent
    # request blocks toward meshbed peers: this many seconds of the peer's rate (see
    # peer/choker.py BLOCK_SECONDS); a large value asks for whole pieces (the simulator's
    # coarse mode at scale: one event per piece instead of one per 16 KiB)
    block_seconds: float = BLOCK_SECONDS


def _never(node: Optional[str], ip: str, port: Optional[int]) -> bool:
    return False


def _not_self(addr: Addr) -> bool:
    return False


def _same(addr: Addr) -> Addr:
    return addr


class SwarmCore:
    def __init__(
        self, num_pieces: int, piece_length: int, length: int, have: Iterable[int] = (), *,
        rng: random.Random, local_id: bytes, config: Optional[CoreConfig] = None,
        bans: Optional[BanList] = None, pex: bool = True, upload: bool = True,
        blocked: Callable[[Optional[str], str, Optional[int]], bool] = _never,
        is_self: Callable[[Addr], bool] = _not_self,
        hello: Optional[Callable[[], ext.ExtHandshake]] = None,
        piece_size: Optional[Callable[[int], int]] = None,
        identity: Optional[MeshIdentity] = None, members_only: bool = False,
        intern_addr: Callable[[Addr], Addr] = _same,
    ) -> None:
        """``blocked(node, ip, port)``: the link's blocklist (partitions); ``is_self(addr)``:
        one of our own addresses; ``hello()``: the extended handshake we send (None: none);
        ``piece_size(i)``: sizes when pieces are uneven (v2: each file starts a piece).
        ``identity``: prove our node name and believe only proven ones (None: names are
        believed, as in the simulator); ``members_only``: serve only proven members and
        given addresses (topology ``access: mesh``); ``intern_addr(addr)``: an equal address
        object to keep instead (the simulator shares one tuple per node among its cores)."""
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.length = length
        self.rng = rng
        self.local_id = local_id
        self.config = config or CoreConfig()
        self.bans = bans if bans is not None else BanList()
        self.blame = Blame(self.bans)  # who sent the bad data of a failed piece
        self.pex = pex
        self.upload = upload
        self.blocked = blocked
        self.is_self = is_self
        self.intern_addr = intern_addr
        self.hello = hello
        self.metadata: Optional[MetadataServer] = None  # set by the driver: serve BEP 9
        if piece_size is not None:
            self.piece_size = piece_size  # type: ignore[assignment]
        self.identity = identity
        self.proofs = identity is not None and bool(identity.key)
        self.members_only = members_only
        self.proven_ids: dict[bytes, str] = {}  # peer_id -> the name it proved
        self.picker = PiecePicker(num_pieces, self.piece_size, have, rng=rng)
        self.peers: dict[bytes, PeerState] = {}  # by peer_id: registered connections
        self.sched = RequestScheduler(self)
        self.choking = Choking(self)
        self.peering = Peering(self)
        self.bytes_from: dict[str, int] = {}
        self.bytes_to: dict[str, int] = {}
        self.downloaded = 0
        self.uploaded = 0
        self.redownloaded = 0  # bytes of pieces asked for although already verified
        self.wasted = 0  # bytes that added nothing: late end-game copies, unasked blocks
        self.wasted_from: dict[str, int] = {}  # ... per peer that sent them
        # uploads of pieces none of our peers held: first copies into our part of the swarm
        # (what the upload carried: first copies, further copies, and the receivers' waste)
        self.uploaded_first = 0
        self._first_to: Optional[list[Optional[str]]] = None  # piece -> its first taker's label
        self.rejected: dict[str, int] = {}
        self.requests_rejected = 0  # requests over the queue limit, rejected or dropped
        self.rate_up = RateMeter()
        self.rate_down = RateMeter()
        self.verify_backlog = 0
        # index -> size, sources, the sender of each unit (several sources), the bytes
        # (kept only while blame waits on them)
        self._verifying: dict[int, tuple[int, list[PeerState], Optional[list[object]],
                                         Optional[Buffer]]] = {}
        self.closing = False
        self._out: list[Action] = []
        self.emit = self._out.append
        self._dispatch: dict[type, Callable[[PeerState, Any, float], None]] = {
            wire.Request: self._on_request,
            wire.Have: self._on_have,
            wire.Unchoke: self._on_unchoke,
            wire.Choke: self._on_choke,
            wire.Interested: self._on_interested,
            wire.NotInterested: self._on_not_interested,
            wire.Cancel: self._on_cancel,
            wire.Bitfield: self._on_bitfield_msg,
            wire.HaveAll: self._on_have_all,
            wire.HaveNone: self._on_have_none,
            wire.Reject: self._on_reject,
            wire.Extended: self.peering.on_extended,
            wire.Suggest: self._on_index_only,
            wire.AllowedFast: self._on_index_only,
            wire.Piece: self._on_piece_msg,
            wire.KeepAlive: _ignore,
            wire.Port: _ignore,
        }

    # ------------------------------------------------------------------ basics
    def piece_size(self, i: int) -> int:
        if i == self.num_pieces - 1:
            return self.length - self.piece_length * i
        return self.piece_length

    @property
    def complete(self) -> bool:
        return self.picker.have_count == self.picker.n

    @property
    def known(self) -> dict[Addr, KnownPeer]:
        return self.peering.known

    def take_actions(self) -> list[Action]:
        """The actions decided since the last call (the outbox is emptied)."""
        out = self._out
        if not out:
            return []
        self._out = []
        self.emit = self._out.append
        return out

    def send(self, c: PeerState, msgs: list[wire.Message]) -> None:
        if c.haves is not None:  # HAVEs held back ride along (one write, one wake-up)
            msgs = [wire.Have(i) for i in c.haves] + msgs
            c.haves = None
        if msgs and not c.closed:
            c.sent = True
            self.emit(Send(c, msgs))

    def close_peer(self, c: PeerState, reason: str = "") -> None:
        if not c.closed:
            c.closed = True
            self.emit(Close(c, reason))

    def ban(self, c: PeerState, reason: str) -> None:
        was_stale = c.closed  # a verdict on a piece may come after it reconnected
        new = self.bans.ban(c)
        c.closed = True
        self.emit(Ban(c, reason, new))
        if was_stale:
            for o in list(self.peers.values()):
                if not o.closed and self.bans.refuses(o):
                    self.close_peer(o, "banned")

    def admitted(self, c: PeerState) -> bool:
        return admission.admitted(self, c)

    def evict_idle(self, now: float) -> bool:
        return admission.evict_idle(self, now)

    # ------------------------------------------------------------------ peers
    def add_peers(self, addrs: list[Addr], source: str, now: float) -> int:
        """Remember addresses (``source``: "given", "pex", "incoming") and dial some."""
        n = self.peering.add(addrs, source)
        if n:
            self.peering.dial(now)
        return n

    def dial_done(self, addr: Addr, ok: bool, now: float) -> None:
        self.peering.dial_done(addr, ok, now)

    def peer_connected(self, c: PeerState, now: float) -> bool:
        """A handshaken connection; False = refuse it (the driver closes it)."""
        if self.closing or self.bans.is_banned(c.ip, c.listen_port or c.port, None):
            return False
        if not c.extended and not self.admitted(c):  # it can never prove a name
            return False
        if self.bans.refuses(c) and not (c.extended and c.peer_id in self.proven_ids):
            return False  # (the id of a proven member is judged on its handshake's proof)
        if sum(1 for o in self.peers.values() if o.ip == c.ip and not o.node) >= MAX_UNPROVEN_PER_IP:
            return False
        cap = self.config.max_peers
        if len(self.peers) >= cap and not self.evict_idle(now) and len(self.peers) >= cap + 10:
            return False
        old = self.peers.get(c.peer_id)
        if old is not None and not old.closed:
            # The same peer twice. Both ways at once: keep the one the smaller peer_id dialed
            # (both sides decide alike). The same way again: the old one is stale, replace it.
            # A proven peer is not displaced by whoever copies its (public) peer_id.
            keep_new = old.outgoing == c.outgoing or (self.local_id < c.peer_id) == c.outgoing
            if self.proofs and old.node and keep_new:
                if old.outgoing == c.outgoing:  # a reconnect: only once the old one went quiet
                    keep_new = now - old.last_recv > STALE_SECONDS
                else:  # both ways: only within a simultaneous dial
                    keep_new = now - old.connected_at <= RACE_WINDOW
            elif self.proofs and old.meshbed and not old.node:
                keep_new = True  # it spoke meshbed and proved nothing: the newcomer may prove
            if not keep_new:
                return False
            self.close_peer(old, "duplicate")
            self.peer_closed(old, now)
        self.peers[c.peer_id] = c
        c.registered = True
        addr = vouched_addr(c)
        if addr is not None:
            self.peering.mark_connected(addr)
        self.send(c, self.initial_messages(c))
        return True

    def initial_messages(self, c: PeerState) -> list[wire.Message]:
        n, have = self.num_pieces, self.picker.have_count
        msgs: list[wire.Message] = []
        if c.fast and have == n:
            msgs.append(wire.HaveAll())
        elif c.fast and have == 0:
            msgs.append(wire.HaveNone())
        elif have:
            msgs.append(self.have_bitfield())
        if c.extended and self.hello is not None:
            hs = self.hello()
            if not self.pex:
                hs = ext.ExtHandshake(m={k: v for k, v in hs.m.items() if k != ext.UT_PEX},
                                      port=hs.port, client=hs.client, reqq=hs.reqq,
                                      meshbed=hs.meshbed, metadata_size=hs.metadata_size)
            proof = self.identity.prove(self.local_id, c.peer_id, hs.port) if self.identity else None
            if proof is not None and hs.meshbed is not None:
                hs = _replace(hs, meshbed=dict(hs.meshbed, proof=proof))
            msgs.append(wire.Extended(0, ext.encode_ext_handshake(hs)))
        return msgs

    def have_bitfield(self) -> wire.Bitfield:
        bits = wire.Bitfield(self.num_pieces)
        status = self.picker.status
        for i in range(self.num_pieces):
            if status[i] == P_HAVE:
                bits.set(i)
        return bits

    def peer_closed(self, c: PeerState, now: float) -> None:
        """The connection ended (either side); idempotent."""
        c.closed = True
        if not c.registered:
            return
        c.registered = False
        if self.peers.get(c.peer_id) is c:
            del self.peers[c.peer_id]
        picker = self.picker
        for key in c.drop_requests():
            picker.release(*key)
        if c.is_seed:
            picker.seed_left()
        else:
            picker.peer_lost(picker.pieces_of(c.pmask))
        addr = vouched_addr(c)
        if addr is not None:
            self.peering.mark_closed(addr, now)
        self.choking.peer_gone(c, now)
        self.sched.fill_all(now)

    def link_changed(self, now: float) -> None:
        """The blocklist changed: end connections it now forbids (they are redialed when
        it allows them again)."""
        for c in list(self.peers.values()):
            if self.blocked(c.node, c.ip, c.listen_port):
                self.close_peer(c, "blocked")
                if c.listen_addr is not None:
                    self.peering.retry_now(c.listen_addr)

    # ------------------------------------------------------------------ messages
    def message(self, c: PeerState, msg: wire.Message, now: float) -> None:
        """A decoded message from ``c``; raises ProtocolError on a violation."""
        c.last_recv = now
        self._dispatch[type(msg)](c, msg, now)

    def _index(self, i: int) -> int:
        if not 0 <= i < self.num_pieces:
            raise ProtocolError("bad_index", str(i))
        return i

    def _on_index_only(self, c: PeerState, msg: Any, now: float) -> None:
        self._index(msg.index)

    def _on_piece_msg(self, c: PeerState, msg: wire.Piece, now: float) -> None:
        if not len(msg.block):
            raise ProtocolError("bad_block", "empty block")
        self.block(c, msg.index, msg.begin, len(msg.block), msg.block, now)

    def _on_have(self, c: PeerState, msg: wire.Have, now: float) -> None:
        if self._have(c, msg.index) and not c.peer_choking:
            self.sched.fill(c, now)

    def haves(self, items: Iterable[tuple[PeerState, int]], now: float) -> None:
        """Many HAVEs at once (simulator): the same as ``message(peer, Have(i), now)`` for
        each, except that each peer's pipeline is topped up once, at the end."""
        have = self._have
        touched: dict[PeerState, None] = {}  # ordered: reproducible runs
        for c, i in items:
            c.last_recv = now
            if have(c, i):
                touched[c] = None
        fill = self.sched.fill
        for c in touched:
            if not c.peer_choking:
                fill(c, now)

    def _have(self, c: PeerState, i: int) -> bool:
        """``c`` has piece ``i``; True when that is a piece we lack (a top-up may follow)."""
        # the hottest event of a big swarm (every verified piece, to every neighbour): tests
        # on the peer's bit mask, no call that can be avoided
        if not 0 <= i < self.num_pieces:
            raise ProtocolError("bad_index", str(i))
        picker = self.picker
        b = picker.bits[i]
        if c.is_seed or c.pmask & b:
            return False
        c.pmask |= b
        if c.pmask == picker.full_mask:
            picker.peer_lost(picker.pieces_of(c.pmask ^ b))
            picker.seed_joined()
            c.is_seed = True
        else:
            picker.peer_have(i)
        if picker.status[i] == P_HAVE:
            return False
        c.useful += 1
        if not c.am_interested:
            self._interest(c, True)
        return True

    def _interest(self, c: PeerState, interested: bool) -> None:
        if interested != c.am_interested:
            c.am_interested = interested
            self.send(c, [wire.Interested() if interested else wire.NotInterested()])

    def _on_unchoke(self, c: PeerState, msg: Any, now: float) -> None:
        c.peer_choking = False
        c.snubbed = False  # a fresh turn: it chose to serve us again
        c.rejected = 0
        self.sched.fill(c, now)

    def _on_choke(self, c: PeerState, msg: Any, now: float) -> None:
        c.peer_choking = True
        c.choked_at = now
        c.rate_at_choke = c.rate_from.rate
        if not c.fast:  # with BEP 6 the peer rejects what it will not send
            self.sched.release_all(c, now)

    def _on_interested(self, c: PeerState, msg: Any, now: float) -> None:
        c.peer_interested = True
        self.choking.on_interest(c, now)

    def _on_not_interested(self, c: PeerState, msg: Any, now: float) -> None:
        c.peer_interested = False
        self.choking.on_interest(c, now)
        if c.haves is not None:  # what we held back may make it interested again
            self.send(c, [])

    def _on_cancel(self, c: PeerState, msg: wire.Cancel, now: float) -> None:
        c.unqueue((msg.index, msg.begin, msg.length))

    def _on_bitfield_msg(self, c: PeerState, msg: wire.Bitfield, now: float) -> None:
        # BEP 3 wants it first, but real clients (aria2) send HAVE_NONE, allowed-fast sets,
        # then one or more bitfields: a later one replaces the earlier state.
        if len(msg) != self.num_pieces:
            msg = wire.Bitfield.from_bytes(self.num_pieces, msg.to_bytes())
        self.on_bitfield(c, msg)

    def _on_have_all(self, c: PeerState, msg: Any, now: float) -> None:
        if not c.fast:
            raise ProtocolError("fast_not_negotiated")
        self.on_bitfield(c, wire.Bitfield.full(self.num_pieces))

    def _on_have_none(self, c: PeerState, msg: Any, now: float) -> None:
        if not c.fast:
            raise ProtocolError("fast_not_negotiated")

    def on_bitfield(self, c: PeerState, bits: wire.Bitfield) -> None:
        """``c`` holds exactly ``bits`` (a BITFIELD or HAVE_ALL)."""
        picker = self.picker
        if c.is_seed:  # a repeated bitfield replaces what the peer announced before
            picker.seed_left()
            c.is_seed = False
        else:
            picker.peer_lost(picker.pieces_of(c.pmask))
        c.pmask = picker.mask_of(bits.iter_set())
        if bits.all():
            c.is_seed = True
            picker.seed_joined()
            c.useful = picker.n - picker.have_count
            if self.complete:  # two seeds have nothing to trade
                self.close_peer(c, "both_seeds")
                return
        else:
            picker.peer_bitfield(bits.iter_set())
            status = picker.status
            c.useful = sum(1 for i in bits.iter_set() if status[i] != P_HAVE)
        self._interest(c, c.useful > 0)

    def _on_reject(self, c: PeerState, msg: wire.Reject, now: float) -> None:
        if not c.fast:
            raise ProtocolError("fast_not_negotiated")
        key = (msg.index, msg.begin, msg.length)
        if c.take_request(key):
            if not c.peer_choking:  # not explained by a choke: it will not serve it
                c.rejected |= self.picker.bits[key[0]]
            self.picker.release(*key)
            self.sched.refill_soon(now)

    # ------------------------------------------------------------------ uploading
    def _on_request(self, c: PeerState, msg: wire.Request, now: float) -> None:
        key = self.check_request(c, msg)
        if self.members_only and not c.node and not self.admitted(c):
            self.close_peer(c, "not_member")
            return
        if c.am_choking or not self.serves(key[0]):
            if c.fast:
                self.send(c, [wire.Reject(*key)])
            return
        if len(c.queue) >= MAX_QUEUED_REQUESTS:
            self._excess_request(c, key)
            return
        if c.enqueue(key):
            self.emit(Serve(c))

    def check_request(self, c: PeerState, msg: wire.Request) -> tuple[int, int, int]:
        """The request's key; raises ProtocolError if it is invalid or one too many."""
        index = self._index(msg.index)
        if msg.length > c.max_request:
            raise ProtocolError("request_too_large", str(msg.length))
        if msg.length <= 0 or msg.begin < 0 or msg.begin + msg.length > self.piece_size(index):
            raise ProtocolError("bad_request", f"{index}:{msg.begin}+{msg.length}")
        return (index, msg.begin, msg.length)

    def _excess_request(self, c: PeerState, key: tuple[int, int, int]) -> None:
        """A request beyond the queue limit: rejected with the fast extension, else dropped
        (the peer asks again after its timeout), as libtorrent does."""
        self.requests_rejected += 1
        c.excess_requests += 1
        if c.excess_requests > MAX_EXCESS_REQUESTS:
            raise ProtocolError("request_flood", str(c.excess_requests))
        if c.fast:
            self.send(c, [wire.Reject(*key)])

    def serves(self, index: int) -> bool:
        """Do we answer requests for piece ``index``?"""
        return self.picker.has(index)

    def next_upload(self, c: PeerState) -> Optional[tuple[int, int, int]]:
        """The next request of ``c`` to serve, or None (after a Serve action)."""
        if c.closed:
            return None
        return c.next_upload()

    def block_sent(self, c: PeerState, length: int, now: float, index: int = -1) -> None:
        if index >= 0:
            self._count_first(c, index, length)
        c.last_sent = now
        c.rate_to.add(length)
        self.rate_up.add(length)
        self.uploaded += length
        label = c.label
        self.bytes_to[label] = self.bytes_to.get(label, 0) + length

    def _count_first(self, c: PeerState, index: int, length: int) -> None:
        """A block of ``index`` went to ``c``: a first copy while no peer of ours holds the
        piece and we sent it to nobody else before (HAVEs lag: a piece sent to A a moment
        ago is not new to B)."""
        first = self._first_to
        if first is None:
            first = self._first_to = [None] * self.num_pieces
        taker = first[index]
        if taker is None and self.picker.availability(index) == 0:
            first[index] = taker = c.label
        if taker == c.label:
            self.uploaded_first += length

    def _waste(self, c: PeerState, length: int) -> None:
        self.wasted += length
        self.wasted_from[c.label] = self.wasted_from.get(c.label, 0) + length

    # ------------------------------------------------------------------ downloading
    def block(self, c: PeerState, index: int, begin: int, length: int,
              data: Optional[Buffer], now: float) -> None:
        """A PIECE message (``data`` None: virtual payload of ``length`` bytes)."""
        c.last_recv = now
        if index >= self.num_pieces or begin + length > self.piece_size(index):
            raise ProtocolError("bad_block", f"{index}:{begin}+{length}")
        key = (index, begin, length)
        asked = c.take_request(key)
        if not asked:  # never merged (nor credited): junk, or a copy that came after our cancel
            self.downloaded += length
            self._waste(c, length)
            return
        picker = self.picker
        c.rate_from.add(length, now)
        self.rate_down.add(length)
        label = c.label
        self.bytes_from[label] = self.bytes_from.get(label, 0) + length
        self.downloaded += length
        if asked:
            c.last_block = now
            c.snubbed = False
        fresh = picker.fresh_bytes(index, begin, length)
        if fresh:
            if fresh < length:  # the part another peer's block already brought
                self._waste(c, length - fresh)
            if picker.received(index, begin, data, c, length):
                self._piece_complete(index)
            if picker.endgame:
                for other in list(self.peers.values()):
                    if other is not c and key in other.outstanding:
                        self.sched.cancel(other, [key])
        elif asked and self.sched.requested[index] == 2 and picker.has(index):
            # we asked for a piece verified before the request: the resume guarantee broke
            self.redownloaded += length
        else:  # a copy that lost the end-game race, or came after our cancel
            self._waste(c, length)
        self.sched.fill(c, now)

    def _piece_complete(self, index: int) -> None:
        p = self.picker.take(index)
        self.verify_backlog += p.size
        data = p.data()
        keep = data if p.units_from is not None or self.blame.wants_data(index) else None
        self._verifying[index] = (p.size, list(p.contributors), p.units_from, keep)  # type: ignore[arg-type]
        self.emit(Verify(index, data))

    def _verify_ended(self, index: int, now: float) -> tuple[
            list[PeerState], Optional[list[object]], Optional[Buffer]]:
        size, sources, units_from, data = self._verifying.pop(index, (0, [], None, None))
        was = self.verify_backlog
        self.verify_backlog -= size
        if was > MAX_VERIFY_BACKLOG >= self.verify_backlog and not self.closing:
            self.sched.fill_all(now)  # requesting was paused: resume
        return sources, units_from, data

    def piece_lost(self, index: int, now: float) -> None:
        """The piece could not be stored (disk trouble): fetch it again."""
        self._verify_ended(index, now)
        self.picker.piece_failed(index)
        self.sched.forget_piece(index)

    def piece_verified(self, index: int, ok: bool, now: float) -> None:
        """Answer to ``Verify(index)``: the hash matched (ok) or not."""
        sources, units_from, data = self._verify_ended(index, now)
        if self.closing:
            return
        picker = self.picker
        if not ok:
            picker.piece_failed(index)
            self.sched.forget_piece(index)
            self._reject("hash_mismatch")
            for c in self.blame.failed(index, sources, units_from, data):
                self.ban(c, "hash_mismatch")
            self.sched.fill_all(now)
            return
        for c in self.blame.passed(index, data):
            self.ban(c, "hash_mismatch")  # its copy of this piece differed from the good one
        picker.piece_passed(index)
        t0 = self.sched.piece_started.get(index)
        self.sched.forget_piece(index)
        if t0 is not None:
            self.emit(PieceTime(index, now - t0))
        lacking: list[PeerState] = []
        lacks = lacking.append
        bit = picker.bits[index]
        for c in self.peers.values():  # (nothing below adds or removes peers)
            if c.is_seed or c.pmask & bit:
                c.useful -= 1
                if c.useful <= 0:
                    self._interest(c, False)
            elif c.closed:
                pass
            elif c.peer_interested and c.am_choking:
                # Lazy HAVE: it wants something of ours already and cannot ask for any of
                # it while we choke it, so this piece is no news it waits on (our Unchoke
                # carries it). Each HAVE alone is a packet and a wake-up of the receiver,
                # ~50 per verified piece per agent in a 1+64 swarm (docs/engine.md).
                if c.haves is None:
                    c.haves = [index]
                else:
                    c.haves.append(index)
            else:  # it may become interested: tell it now
                c.sent = True
                lacks(c)
        if lacking:
            self.emit(Broadcast(lacking, [wire.Have(index)]))
        if picker.complete:
            self._on_complete()

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.emit(Rejected(reason))

    def _on_complete(self) -> None:
        for c in list(self.peers.values()):
            if c.is_seed or not self.upload:  # nothing left to trade
                self.close_peer(c, "complete")
        self.emit(Completed())

    # ------------------------------------------------------------------ periodic
    def tick(self, now: float) -> None:
        """Once a second: rates, keepalives, idle/snub checks, choking, PEX, dialing."""
        self.rate_up.tick(now)
        self.rate_down.tick(now)
        keepalive: list[wire.Message] = [wire.KeepAlive()]
        sched, peering, pex = self.sched, self.peering, self.pex
        for c in list(self.peers.values()):
            c.rate_from.tick(now)
            c.rate_to.tick(now)
            if now - c.last_recv > IDLE_SECONDS:
                self.close_peer(c, "idle")
                continue
            if c.sent:  # sends carry no time: "since the last tick" is precise enough
                c.sent = False
                c.last_sent = now
            elif now - c.last_sent > KEEPALIVE_SECONDS:
                self.send(c, keepalive)
            sched.check(c, now)
            if pex:
                peering.pex_tick(c, now)
            if c.haves is not None:  # held back HAVEs no other message carried this second
                self.send(c, [])
        sched.endgame_tick(now)
        self.choking.tick(now)
        peering.dial(now)

    def timer(self, token: Any, now: float) -> None:
        """A ``Timer`` action came due."""
        if token == REFILL:
            self.sched.on_refill(now)
        elif isinstance(token, tuple) and token[0] == "pex":
            self.peering.send_pex(token[1])

    def complete_on_resume(self) -> None:
        """A torrent loaded complete: announce it as if the last piece just passed."""
        self._on_complete()

    def close(self) -> None:
        self.closing = True
        for c in list(self.peers.values()):
            self.close_peer(c, "")

    # ------------------------------------------------------------------ reporting
    def rarest_copies(self) -> Optional[int]:
        if not self.peers and not self.picker.have_count:
            return None
        return self.picker.rarest_copies()


def _ignore(c: PeerState, msg: Any, now: float) -> None:
    pass
