"""Addresses of one torrent: known peers, dialing with backoff, peer exchange (pure)."""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING

from peer import extensions as ext
from peer import metadata, wire
from peer.core.actions import Dial, Timer
from peer.core.admission import vouched_addr
from peer.core.bans import is_loopback, offender_key
from peer.core.errors import ProtocolError
from peer.wire import BLOCK, MAX_BLOCK

if TYPE_CHECKING:
    from peer.core.peerstate import PeerState
    from peer.core.swarm import SwarmCore

Addr = tuple[str, int]
PEX_INTERVALS = (1.0, 3.0, 10.0, 30.0)  # the first PEX soon after connecting, then every 30 s
PEX_GREETING = 0.2  # a newcomer's upload is idle until it knows peers: tell it soon
PEX_PER_MINUTE = 30  # new addresses taken from one source per minute (each may be dialed)
MAX_BACKOFF = 60.0
REDIAL_AFTER_CLOSE = 2.0
METADATA_ANSWERS = 64  # ut_metadata answers per connection (the info dict a few times over)


class KnownPeer:
    """An address of the torrent we may dial (slotted: a core keeps up to max_known)."""

    __slots__ = ("addr", "source", "fails", "next_try", "connected")

    def __init__(self, addr: Addr, source: str, fails: int = 0, next_try: float = 0.0,
                 connected: bool = False) -> None:
        self.addr = addr
        self.source = source  # "given" | "pex" | "incoming"
        self.fails = fails
        self.next_try = next_try
        self.connected = connected

    def __repr__(self) -> str:
        return (f"KnownPeer(addr={self.addr!r}, source={self.source!r}, fails={self.fails}, "
                f"next_try={self.next_try}, connected={self.connected})")


class Peering:
    def __init__(self, core: SwarmCore) -> None:
        self.core = core
        self.known: dict[Addr, KnownPeer] = {}
        self.dialing: set[Addr] = set()
        self.pex_budget: dict[str, tuple[float, int]] = {}  # source -> (window start, taken)
        # PEX: each address told to someone gets a number; PeerState.pex_sent is a mask of
        # them (an int per connection instead of a dict of tuples: the simulator has many)
        self._addr_number: dict[Addr, int] = {}
        self._addrs: list[Addr] = []

    def add(self, addrs: list[Addr], source: str) -> int:
        """Remember addresses; a known one given again ("given") that is neither connected
        nor being dialed loses its backoff. Returns how many are new or revived."""
        added = 0
        core = self.core
        known, cap = self.known, core.config.max_known
        for addr in addrs:
            kp = known.get(addr)
            if kp is not None:
                if source == "given" and not kp.connected and addr not in self.dialing:
                    kp.fails, kp.next_try = 0, 0.0  # given again: dial it now, no backoff
                    added += 1
                continue
            if len(known) >= cap or core.is_self(addr):
                continue
            addr = core.intern_addr(addr)
            known[addr] = KnownPeer(addr, source)
            added += 1
        return added

    def add_from_pex(self, c: PeerState, addrs: list[Addr], now: float) -> int:
        """Addresses ``c`` told us: routable ones (loopback only from a loopback peer), not
        ours, at most PEX_PER_MINUTE new ones per source."""
        src = offender_key(c)
        start, taken = self.pex_budget.get(src, (now, 0))
        if now - start >= 60.0:
            start, taken = now, 0
        room = PEX_PER_MINUTE - taken
        if room <= 0:
            return 0
        local = is_loopback(c.ip)
        known = self.known
        fresh: list[Addr] = []
        if len(known) < self.core.config.max_known:  # full: none would be taken, parse none
            fresh = [a for a in addrs if a not in known and _dialable(a, local)]
        added = self.add(fresh[:room], "pex")
        if len(self.pex_budget) >= 1000 and src not in self.pex_budget:
            self.pex_budget.pop(next(iter(self.pex_budget)))
        self.pex_budget[src] = (start, taken + added)
        return added

    def mark_connected(self, addr: Addr) -> None:
        kp = self.known.get(addr)
        if kp is None and len(self.known) < self.core.config.max_known:
            addr = self.core.intern_addr(addr)
            kp = self.known[addr] = KnownPeer(addr, "incoming")
        if kp is not None:
            kp.connected, kp.fails = True, 0

    def mark_closed(self, addr: Addr, now: float) -> None:
        kp = self.known.get(addr)
        if kp is not None:
            kp.connected = False
            kp.next_try = now + REDIAL_AFTER_CLOSE

    def retry_now(self, addr: Addr) -> None:
        kp = self.known.get(addr)
        if kp is not None:
            kp.next_try = 0.0

    def dial(self, now: float) -> None:
        core = self.core
        if core.closing or (core.complete and not core.upload):
            return
        cfg = core.config
        free = cfg.max_peers - len(core.peers)
        if free <= 0 and any(not o.peer_interested and not o.am_interested
                             for o in core.peers.values()):
            free = 1  # full of idle peers: one of them makes room if this dial succeeds
        room = min(free, cfg.max_dials - len(self.dialing))
        if room <= 0:
            return
        bans, blocked, is_self = core.bans, core.blocked, core.is_self
        for kp in list(self.known.values()):
            if room <= 0:
                break
            if kp.connected or kp.addr in self.dialing or kp.next_try > now:
                continue
            if (not core.pex and kp.source == "pex") or bans.is_banned(*kp.addr, None):
                continue
            if blocked(None, kp.addr[0], kp.addr[1]) or is_self(kp.addr):
                continue
            if core.complete and kp.source != "given":
                continue  # a seed waits for leechers to come; it only re-dials given peers
            self.dialing.add(kp.addr)
            room -= 1
            core.emit(Dial(kp.addr))

    def dial_done(self, addr: Addr, ok: bool, now: float) -> None:
        self.dialing.discard(addr)
        if not ok:
            kp = self.known.get(addr)
            if kp is not None:
                kp.fails += 1
                kp.next_try = now + min(MAX_BACKOFF, 2.0 ** kp.fails)

    # ------------------------------------------------------------------ BEP 10/11 messages
    def on_extended(self, c: PeerState, msg: wire.Extended, now: float) -> None:
        core = self.core
        if msg.ext_id == 0:
            h = ext.decode_ext_handshake(msg.payload)
            c.ext_ids = {k: v for k, v in h.m.items() if v}
            if h.port and not c.listen_port:
                c.set_listen_port(h.port)
            if h.meshbed is not None:
                c.meshbed = True
                node = h.meshbed.get("node")
                name = str(node) if node else None
                ident = core.identity
                if name and ident is not None and not ident.check(
                    core.local_id, c.peer_id, h.port, name, h.meshbed.get("proof")
                ):
                    name = None  # unproven: only an address
                c.node = name
                if name and core.proofs and len(core.proven_ids) < 10000:
                    core.proven_ids[c.peer_id] = name
                their = h.meshbed.get("block")
                block = their if isinstance(their, int) else BLOCK
                c.block = max(BLOCK, min(MAX_BLOCK, block))
                c.max_request = MAX_BLOCK
            self._on_ext_handshake(c, now)
        elif msg.ext_id == ext.UT_PEX_ID:
            added, _dropped = ext.decode_pex(msg.payload)
            if core.pex and self.add_from_pex(c, added, now):
                self.dial(now)
        elif msg.ext_id == ext.UT_METADATA_ID and core.metadata is not None:
            self._on_metadata(c, msg.payload)
        # other extended ids (meshbed_v1 messages, unknown): ignored

    def _on_metadata(self, c: PeerState, payload: bytes) -> None:
        """BEP 9: serve our info dict (core.metadata) piece by piece, a bounded number of
        times per connection; anything beyond is rejected."""
        their_id = c.ext_ids.get(ext.UT_METADATA)
        try:
            req = metadata.decode_metadata_msg(payload)
        except metadata.MetadataError as e:
            raise ProtocolError("bad_metadata", str(e)) from None
        if not their_id or not isinstance(req, metadata.MetaRequest):
            return  # data/reject sent to a seed: nothing asked, ignored
        c.meta_answers += 1
        server = self.core.metadata
        assert server is not None
        answer = server.answer(req) if c.meta_answers <= METADATA_ANSWERS else None
        if answer is None:
            answer = metadata.MetaReject(req.piece)
        self.core.send(c, [wire.Extended(their_id, metadata.encode_metadata_msg(answer))])

    def _on_ext_handshake(self, c: PeerState, now: float) -> None:
        core = self.core
        if core.bans.refuses(c) or core.blocked(c.node, c.ip, c.listen_port):
            core.close_peer(c, "blocked")
            return
        if not core.admitted(c):
            core.close_peer(c, "not_member")
            return
        if core.proofs and not c.node and c.peer_id in core.proven_ids:
            core.close_peer(c, "impostor")  # the peer_id of a proven member, without its proof
            return
        addr = vouched_addr(c)
        if addr is not None:  # a claimed port must not stop us dialing the real one
            self.mark_connected(addr)
        if core.pex and ext.UT_PEX in c.ext_ids and not c.pex_greeted:
            c.pex_greeted = True
            core.emit(Timer(now + PEX_GREETING, ("pex", c)))

    # ------------------------------------------------------------------ PEX
    def _addr_bit(self, addr: Addr) -> int:
        n = self._addr_number.get(addr)
        if n is None:
            n = self._addr_number[addr] = len(self._addrs)
            self._addrs.append(addr)
        return 1 << n

    def _first(self, mask: int, k: int) -> tuple[list[Addr], int]:
        """Up to ``k`` addresses of ``mask`` (lowest numbers first) and their mask."""
        out: list[Addr] = []
        taken = 0
        addrs = self._addrs
        while mask and len(out) < k:
            low = mask & -mask
            out.append(addrs[low.bit_length() - 1])
            taken |= low
            mask ^= low
        return out, taken

    def send_pex(self, c: PeerState) -> None:
        their_id = c.ext_ids.get(ext.UT_PEX)
        if not their_id or c.closed:
            return
        current = 0
        bit = self._addr_bit
        for o in self.core.peers.values():
            if o is not c and o.listen_addr is not None and not o.closed:
                current |= bit(o.listen_addr)
        if c.listen_addr is not None:
            current &= ~bit(c.listen_addr)
        sent = c.pex_sent
        added, plus = self._first(current & ~sent, 50)
        dropped, minus = self._first(sent & ~current, 50)
        if not added and not dropped:
            return
        c.pex_sent = (sent | plus) & ~minus
        self.core.send(c, [wire.Extended(their_id, ext.encode_pex(added, dropped))])

    def pex_tick(self, c: PeerState, now: float) -> None:
        if now >= c.next_pex:
            self.send_pex(c)
            c.pex_round += 1
            c.next_pex = now + PEX_INTERVALS[min(c.pex_round, len(PEX_INTERVALS) - 1)]


@functools.lru_cache(maxsize=4096)  # PEX repeats the same addresses; parsing one is ~3 us
def _dialable(addr: Addr, loopback_ok: bool) -> bool:
    host, port = addr
    if not 0 < port < 65536:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return loopback_ok
    return not (ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip.is_link_local
                or str(ip) == "255.255.255.255")
