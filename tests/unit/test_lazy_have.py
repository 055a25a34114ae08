"""Lazy HAVEs (peer/core/swarm.py): a peer that wants something of ours while we choke it
learns of a new piece with our next message to it or at the next tick; the others at once."""

from __future__ import annotations

from peer import wire
from peer.core import Broadcast, PeerState, Send, SwarmCore
from tests.unit.core_pump import make_core


def peer(core: SwarmCore, name: str, *, interested: bool, choked: bool) -> PeerState:
    p = PeerState(4, 0.0, peer_id=name.encode() * 20, ip=f"10.0.0.{ord(name)}", port=1,
                  outgoing=True, listen_port=7000)
    assert core.peer_connected(p, 0.0)
    core.message(p, wire.Have(3), 0.0)  # it has piece 3, not piece 0
    p.peer_interested, p.am_choking = interested, choked
    return p


def verify_piece_0(core: SwarmCore) -> list[object]:
    seed = PeerState(4, 0.0, peer_id=b"s" * 20, ip="10.0.0.99", port=1, outgoing=True,
                     listen_port=7000)
    assert core.peer_connected(seed, 0.0)
    core.message(seed, wire.HaveAll(), 0.0)
    core.message(seed, wire.Unchoke(), 0.0)
    for key in sorted(k for k in seed.outstanding if k[0] == 0):
        core.block(seed, *key, b"x" * key[2], 0.5)
    core.take_actions()
    core.piece_verified(0, True, 0.6)
    return core.take_actions()


def told_now(acts: list[object], p: PeerState) -> bool:
    have = wire.Have(0)
    return any((isinstance(a, Broadcast) and p in a.peers and have in a.msgs)
               or (isinstance(a, Send) and a.peer is p and have in a.msgs) for a in acts)


def test_a_choked_interested_peer_gets_the_have_later_the_others_at_once() -> None:
    core = make_core(4, False, "l")
    waiting = peer(core, "w", interested=True, choked=True)
    served = peer(core, "u", interested=True, choked=False)
    indifferent = peer(core, "i", interested=False, choked=True)
    core.take_actions()
    acts = verify_piece_0(core)
    assert told_now(acts, served) and told_now(acts, indifferent)
    assert not told_now(acts, waiting) and waiting.haves == [0]
    core.upload = False  # no unchoke to carry it: the tick sends it alone
    core.tick(1.0)
    assert told_now(core.take_actions(), waiting) and waiting.haves is None


def test_held_back_haves_ride_along_with_our_next_message() -> None:
    core = make_core(4, False, "l")
    waiting = peer(core, "w", interested=True, choked=True)
    core.take_actions()
    verify_piece_0(core)
    core.choking.set_choking(waiting, False, 0.7)
    (send,) = [a for a in core.take_actions() if isinstance(a, Send) and a.peer is waiting]
    assert send.msgs == [wire.Have(0), wire.Unchoke()]


def test_a_peer_that_loses_interest_is_told_at_once() -> None:
    core = make_core(4, False, "l")
    waiting = peer(core, "w", interested=True, choked=True)
    core.take_actions()
    verify_piece_0(core)
    core.message(waiting, wire.NotInterested(), 0.8)
    assert told_now(core.take_actions(), waiting)
