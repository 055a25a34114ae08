"""A zero-latency, infinite-rate driver of engine cores for the unit tests (and a minimal
example of driving peer.core): no pytest here, so a subprocess can import it cheaply."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from peer import extensions as ext
from peer.core import Ban, Broadcast, Close, PeerState, Send, Serve, SwarmCore, Timer, Verify

PIECE = 256 * 1024


def hello(node: str, block: int = PIECE) -> Any:
    return lambda: ext.local_handshake(port=6881, client="t", reqq=256, node=node, mesh="m",
                                       block=block)


def make_core(n: int, have: bool, node: str, seed: int = 1, **kw: Any) -> SwarmCore:
    return SwarmCore(n, PIECE, n * PIECE, range(n) if have else (), rng=random.Random(seed),
                     local_id=node.encode().ljust(20, b"-"), hello=hello(node), **kw)


def connect(a: SwarmCore, b: SwarmCore, now: float = 0.0) -> tuple[PeerState, PeerState]:
    """a dialed b: the PeerState each side holds for the other."""
    pa = PeerState(a.num_pieces, now, peer_id=b.local_id, ip="10.0.0.2", port=6881,
                   outgoing=True, listen_port=6881)
    pb = PeerState(b.num_pieces, now, peer_id=a.local_id, ip="10.0.0.1", port=40000,
                   outgoing=False)
    pa.key, pb.key = (b, pb), (a, pa)  # where messages to this peer land
    assert a.peer_connected(pa, now) and b.peer_connected(pb, now)
    return pa, pb


class Pump:
    """Delivers every action at once, in order: a zero-latency, infinite-rate network."""

    def __init__(self, *cores: SwarmCore) -> None:
        self.cores = cores
        self.seen: list[Any] = []
        self.timers: list[tuple[float, SwarmCore, Any]] = []

    def run(self, now: float = 0.0, limit: int = 100000) -> None:
        work: deque[tuple[SwarmCore, Any]] = deque()
        for _ in range(limit):
            for core in self.cores:
                work.extend((core, a) for a in core.take_actions())
            if not work:
                return
            core, act = work.popleft()
            self.seen.append(act)
            if isinstance(act, (Send, Broadcast)):
                for peer in act.peers if isinstance(act, Broadcast) else [act.peer]:
                    other, back = peer.key
                    for msg in act.msgs:
                        if not back.closed:
                            other.message(back, msg, now)
            elif isinstance(act, Serve):
                other, back = act.peer.key
                while (req := core.next_upload(act.peer)) is not None:
                    core.block_sent(act.peer, req[2], now, req[0])
                    other.block(back, req[0], req[1], req[2], None, now)
            elif isinstance(act, Verify):
                core.piece_verified(act.piece, True, now)
            elif isinstance(act, Timer):
                self.timers.append((act.at, core, act.token))
            elif isinstance(act, (Close, Ban)):
                other, back = act.peer.key
                core.peer_closed(act.peer, now)
                other.peer_closed(back, now)
        raise AssertionError("no quiescence")


def swarm_log(seed: int) -> list[str]:
    """Actions of a 1+5 swarm with PEX, ticks and rechoking, as text."""
    cores = [make_core(16, i == 0, f"n{i}", seed=seed + i) for i in range(6)]
    for i in range(1, 6):
        for j in range(i):
            connect(cores[i], cores[j])
    pump = Pump(*cores)
    now = 0.0
    while not all(c.complete for c in cores[1:]) and now < 100:
        pump.run(now)
        for _at, core, token in sorted(pump.timers, key=lambda t: t[0]):
            core.timer(token, now)
        pump.timers.clear()
        now += 1.0
        for c in cores:
            c.tick(now)
    assert all(c.complete for c in cores)
    return [repr(a) for a in pump.seen]


