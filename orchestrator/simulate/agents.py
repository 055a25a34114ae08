"""Simulated agents: the agent's own swarm core (``peer.core.SwarmCore``) driven over the
simulated network instead of sockets.

Nothing here decides anything about the swarm: which pieces to ask for, whom to unchoke,
when to send HAVE or PEX, whom to dial all come from the core's actions. This module only
carries them out in virtual time, the way ``peer/torrent.py`` does over TCP:

- ``Send`` -> control messages on the connection's channel (latency only);
- ``Serve`` -> blocks from ``core.next_upload`` as flows, one after the other, then
  ``block_sent``; the receiver gets ``core.block(..., data=None)`` (virtual payload);
- ``Verify`` -> ``piece_verified(ok=True)`` at once (no data, no hashing);
- ``Dial`` -> a connection after 1.5 round trips (TCP + BitTorrent handshakes), refused
  after one round trip when the node is down or does not have the torrent;
- ``Close``/``Ban`` -> both directions end; the other side learns it one latency later;
- ``Timer`` -> a virtual-time callback; ``tick`` once a second per agent (phase spread).
"""

from __future__ import annotations

import hashlib
import operator
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from orchestrator.simulate.network import Channel, Port, post_all
from peer import extensions as ext
from peer import wire
from peer.core import (
    Ban,
    BanList,
    Broadcast,
    Close,
    Completed,
    Dial,
    PeerState,
    ProtocolError,
    Send,
    Serve,
    SwarmCore,
    Timer,
    Verify,
)

if TYPE_CHECKING:
    from orchestrator.simulate.world import World

WIRE_PORT = 6881
CLIENT = "meshbed/0.1"
REQQ = 256
TICK = 1.0
_endpoint = operator.attrgetter("key")  # PeerState -> its Endpoint (a C call per peer)
_FIXED_FRAME = {
    wire.KeepAlive: 4, wire.Choke: 5, wire.Unchoke: 5, wire.Interested: 5,
    wire.NotInterested: 5, wire.HaveAll: 5, wire.HaveNone: 5, wire.Have: 9, wire.Suggest: 9,
    wire.AllowedFast: 9, wire.Port: 7, wire.Request: 17, wire.Cancel: 17, wire.Reject: 17,
}


class BlockMsg:
    """A PIECE message with a virtual payload."""

    __slots__ = ("index", "begin", "length")

    def __init__(self, index: int, begin: int, length: int) -> None:
        self.index = index
        self.begin = begin
        self.length = length


def frame_size(msg: Any) -> int:
    """Bytes of ``msg`` on the wire (length prefix included), without encoding it."""
    n = _FIXED_FRAME.get(type(msg))
    if n is not None:
        return n
    if isinstance(msg, wire.Bitfield):
        return 5 + (len(msg) + 7) // 8
    if isinstance(msg, wire.Extended):
        return 6 + len(msg.payload)
    return len(wire.encode(msg))


class Endpoint:
    """One side of a simulated connection for one torrent."""

    __slots__ = ("open", "out", "peer", "core", "agent", "content", "remote", "serving", "id")

    def __init__(self, cid: int, agent: SimAgent, content: str, core: SwarmCore,
                 peer: PeerState, out: Channel) -> None:
        self.id = cid
        self.agent = agent
        self.content = content
        self.core = core
        self.peer = peer
        self.out = out
        self.remote: Optional[Endpoint] = None
        self.serving = False
        self.open = True
        peer.key = self


class SimAgent:
    """One node: its access link, its cores (one per content) and its connections."""

    def __init__(self, world: World, name: str, index: int, port: Port) -> None:
        self.world = world
        self.name = name
        self.index = index
        self.port = port
        self.ip = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
        self.addr = (self.ip, WIRE_PORT)
        self.peer_id = b"-MB0001-" + hashlib.sha1(f"{world.seed}:{name}".encode()).digest()[:12]
        self.rng = random.Random(f"{world.seed}:agent:{name}")
        self.bans = BanList()
        self.cores: dict[str, SwarmCore] = {}
        self.kept: dict[str, list[int]] = {}  # content -> verified pieces while down
        self.conns: dict[int, Endpoint] = {}
        self.alive = True
        self.ticking = False
        self.incarnation = 0  # a restart starts a new tick chain; the old one stops
        self.phase = self.rng.random() * TICK  # ticks of all agents spread over the second

    # --- cores --------------------------------------------------------------------------
    def hello(self) -> ext.ExtHandshake:
        return ext.local_handshake(port=WIRE_PORT, client=CLIENT, reqq=REQQ, node=self.name,
                                   mesh=self.world.mesh, block=wire.MAX_BLOCK)

    def blocked(self, node: Optional[str], ip: str, port: Optional[int]) -> bool:
        return self.world.blocked(self.name, node, ip)

    def is_self(self, addr: tuple[str, int]) -> bool:
        return addr == self.addr

    def add_core(self, content: str, have: Iterable[int], upload: bool, pex: bool) -> SwarmCore:
        c = self.world.contents[content]
        core = SwarmCore(
            c.pieces, c.piece_length, c.size, have, rng=self.rng, local_id=self.peer_id,
            config=self.world.core_config, bans=self.bans, pex=pex, upload=upload,
            blocked=self.blocked, is_self=self.is_self, hello=self.hello,
            intern_addr=self.world.intern_addr,
        )
        self.cores[content] = core
        if not self.ticking:
            self.ticking = True
            self.incarnation += 1
            clock = self.world.clock
            clock.at(clock.now + self.phase, self._tick, self.incarnation)
        return core

    def have(self, content: str) -> list[int]:
        core = self.cores.get(content)
        if core is None:
            return list(self.kept.get(content, ()))
        status = core.picker.status
        return [i for i in range(core.num_pieces) if status[i] == 3]  # P_HAVE

    def _tick(self, incarnation: int) -> None:
        if not self.alive or incarnation != self.incarnation:  # killed (and maybe restarted)
            return
        now = self.world.clock.now
        for name, core in list(self.cores.items()):
            core.tick(now)
            self.run(name, core)
        self.world.clock.at(now + TICK, self._tick, incarnation)

    # --- actions ------------------------------------------------------------------------
    def run(self, content: str, core: SwarmCore) -> None:
        """Carry out the core's actions until it has none left."""
        world = self.world
        while True:
            actions = core.take_actions()
            if not actions:
                return
            now = world.clock.now
            a: Any
            for a in actions:
                kind = type(a)
                if kind is Send:
                    ep: Endpoint = a.peer.key
                    if ep is not None and ep.open:
                        out = ep.out
                        for m in a.msgs:
                            out.send(m, frame_size(m))
                elif kind is Broadcast:  # one HAVE to every peer lacking the piece
                    outs = [ep.out for ep in map(_endpoint, a.peers) if ep is not None and ep.open]
                    for m in a.msgs:
                        post_all(outs, m)
                elif kind is Serve:
                    ep = a.peer.key
                    if ep is not None and ep.open and not ep.serving:
                        self._serve(ep)
                elif kind is Verify:
                    core.piece_verified(a[0], True, now)  # a.index is tuple.index
                elif kind is Close or kind is Ban:
                    ep = a.peer.key
                    if ep is not None:
                        world.disconnect(ep, now)
                elif kind is Dial:
                    world.dial(self, content, a.addr)
                elif kind is Timer:
                    world.clock.at(a.at, self._timer, content, core, a.token)
                elif kind is Completed:
                    world.completed(self, content)
                # Rejected, PieceTime: metrics only

    def _timer(self, content: str, core: SwarmCore, token: Any) -> None:
        if self.alive and self.cores.get(content) is core:
            core.timer(token, self.world.clock.now)
            self.run(content, core)

    def _serve(self, ep: Endpoint) -> None:
        key = ep.core.next_upload(ep.peer)
        if key is None:
            ep.serving = False
            return
        ep.serving = True
        ep.out.send(BlockMsg(*key), 13 + key[2])

    # --- channel callbacks --------------------------------------------------------------
    def sent(self, ep: Endpoint, msg: Any) -> None:
        """A block's last byte left our upload."""
        if not ep.open or not self.alive:
            return
        ep.core.block_sent(ep.peer, msg.length, self.world.clock.now, msg.index)
        self._serve(ep)
        self.run(ep.content, ep.core)

    def received_batch(self, batch: list[tuple[Channel, Any]]) -> None:
        """HAVEs arriving together: one ``core.haves`` call per core (one pipeline top-up
        per touched peer), then that core's actions."""
        if not self.alive:
            return
        now = self.world.clock.now
        if len(self.cores) == 1:  # one torrent (the usual case): no grouping
            ((content, core),) = self.cores.items()
            mine: list[tuple[PeerState, int]] = [(ep.peer, msg.index) for ch, msg in batch
                                                 if not ch.closed and (ep := ch.to).open and ep.core is core]
            if mine:
                self._haves(content, core, mine, now)
            return
        groups: dict[SwarmCore, list[tuple[PeerState, int]]] = {}  # insertion order
        firsts: list[Endpoint] = []
        for ch, msg in batch:
            ep = ch.to
            if ch.closed or not ep.open:
                continue
            items = groups.get(ep.core)
            if items is None:
                items = groups[ep.core] = []
                firsts.append(ep)
            items.append((ep.peer, msg.index))
        for ep in firsts:
            self._haves(ep.content, ep.core, groups[ep.core], now)

    def _haves(self, content: str, core: SwarmCore, items: list[tuple[PeerState, int]], now: float) -> None:
        try:
            core.haves(items, now)
        except ProtocolError as exc:  # never from simulated peers; as the agent would
            core.close_peer(items[0][0], exc.reason)
        self.run(content, core)

    def received(self, ep: Endpoint, msg: Any) -> None:
        if not ep.open or not self.alive:
            return
        core, now = ep.core, self.world.clock.now
        try:
            if type(msg) is BlockMsg:
                core.block(ep.peer, msg.index, msg.begin, msg.length, None, now)
            else:
                core.message(ep.peer, msg, now)
        except ProtocolError as exc:
            core.close_peer(ep.peer, exc.reason)
        self.run(ep.content, core)


def deliver(ep: Endpoint, msg: Any) -> None:
    """A channel handed ``msg`` to its receiving endpoint ``ep``."""
    ep.agent.received(ep, msg)


def sent(ep: Endpoint, msg: Any) -> None:
    """A block's last byte left the sender of the channel that ends at ``ep``."""
    src = ep.remote
    if src is not None:
        src.agent.sent(src, msg)
