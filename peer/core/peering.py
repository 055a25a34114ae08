"""Addresses of one torrent: known peers, dialing with backoff, peer exchange (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from peer import extensions as ext
from peer import wire
from peer.core.actions import Dial, Timer
from peer.wire import BLOCK, MAX_BLOCK

if TYPE_CHECKING:
    from peer.core.peerstate import PeerState
    from peer.core.swarm import SwarmCore

Addr = tuple[str, int]
PEX_INTERVALS = (1.0, 3.0, 10.0, 30.0)  # the first PEX soon after connecting, then every 30 s
PEX_GREETING = 0.2  # a newcomer's upload is idle until it knows peers: tell it soon
MAX_BACKOFF = 60.0
REDIAL_AFTER_CLOSE = 2.0


@dataclass
class KnownPeer:
    addr: Addr
    source: str  # "given" | "pex" | "incoming"
    fails: int = 0
    next_try: float = 0.0
    connected: bool = False


class Peering:
    def __init__(self, core: SwarmCore) -> None:
        self.core = core
        self.known: dict[Addr, KnownPeer] = {}
        self.dialing: set[Addr] = set()
        # PEX: each address told to someone gets a number; PeerState.pex_sent is a mask of
        # them (an int per connection instead of a dict of tuples: the simulator has many)
        self._addr_number: dict[Addr, int] = {}
        self._addrs: list[Addr] = []

    def add(self, addrs: list[Addr], source: str) -> int:
        added = 0
        core = self.core
        known, cap = self.known, core.config.max_known
        for addr in addrs:
            if addr in known or len(known) >= cap or core.is_self(addr):
                continue
            known[addr] = KnownPeer(addr, source)
            added += 1
        return added

    def mark_connected(self, addr: Addr) -> None:
        kp = self.known.get(addr)
        if kp is None and len(self.known) < self.core.config.max_known:
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
        room = min(cfg.max_peers - len(core.peers), cfg.max_dials - len(self.dialing))
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
                c.node = str(node) if node else None
                their = h.meshbed.get("block")
                block = their if isinstance(their, int) else BLOCK
                c.block = max(BLOCK, min(MAX_BLOCK, block))
                c.max_request = MAX_BLOCK
            self._on_ext_handshake(c, now)
        elif msg.ext_id == ext.UT_PEX_ID:
            added, _dropped = ext.decode_pex(msg.payload)
            if core.pex and self.add(added[:100], "pex"):
                self.dial(now)
        # other extended ids (meshbed_v1 messages, unknown): ignored

    def _on_ext_handshake(self, c: PeerState, now: float) -> None:
        core = self.core
        if core.bans.is_banned(c.ip, c.listen_port, c.node) or core.blocked(
            c.node, c.ip, c.listen_port
        ):
            core.close_peer(c, "blocked")
            return
        if c.listen_addr is not None:
            self.mark_connected(c.listen_addr)
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
