"""The pure core against hostile peers: proven names, bans on what cannot be faked,
unrequested blocks, PEX rationing, idle eviction, members only (peer/core, no I/O)."""

from __future__ import annotations

import random
from typing import Any

from peer import extensions as ext
from peer import wire
from peer.core import BanList, Close, CoreConfig, Dial, PeerState, SwarmCore
from peer.core.admission import EVICT_GRACE
from peer.core.identity import MeshIdentity
from peer.core.peering import PEX_PER_MINUTE

PIECE = 256 * 1024
IH = b"i" * 20
KEY = b"mesh key"


def make_core(node: str, have: bool = False, key: bytes = KEY, **kw: Any) -> SwarmCore:
    hello = lambda: ext.local_handshake(port=6881, client="t", reqq=256, node=node,  # noqa: E731
                                        mesh="m", block=PIECE)
    return SwarmCore(4, PIECE, 4 * PIECE, range(4) if have else (), rng=random.Random(1),
                     local_id=node.encode().ljust(20, b"-"), hello=hello,
                     identity=MeshIdentity(key, node, IH), **kw)


def handshake_from(sender: SwarmCore, to: SwarmCore) -> wire.Extended:
    """The extended handshake ``sender`` sends to ``to`` (with its proof)."""
    p = PeerState(4, 0.0, peer_id=to.local_id, ip="10.0.0.9", port=1, outgoing=True)
    (msg,) = [m for m in sender.initial_messages(p) if isinstance(m, wire.Extended)]
    return msg


def incoming(core: SwarmCore, peer_id: bytes, ip: str = "10.0.0.2") -> PeerState:
    p = PeerState(4, 0.0, peer_id=peer_id, ip=ip, port=50000, outgoing=False, block=PIECE)
    assert core.peer_connected(p, 0.0)
    core.take_actions()
    return p


def claim(node: str, port: int = 6881) -> wire.Extended:
    hs = ext.local_handshake(port=port, client="evil", reqq=1, node=node, mesh="m", block=PIECE)
    return wire.Extended(0, ext.encode_ext_handshake(hs))


def test_a_name_counts_only_with_a_proof_made_with_the_mesh_key() -> None:
    seed, leech = make_core("s", have=True), make_core("l")
    p = incoming(leech, seed.local_id)
    leech.message(p, handshake_from(seed, leech), 0.0)
    assert p.node == "s" and p.label == "s"
    stranger = make_core("s", have=True, key=b"another key")
    q = incoming(leech, b"q" * 20)
    leech.message(q, handshake_from(stranger, leech), 0.0)
    assert q.node is None and q.label == "10.0.0.2"
    # a proof made for another receiver does not verify here
    other = make_core("o")
    r = incoming(leech, seed.local_id[:-1] + b"x")
    leech.message(r, handshake_from(seed, other), 0.0)
    assert r.node is None


def test_bans_of_an_impostor_never_touch_the_name_it_claimed() -> None:
    bans = BanList()
    leech = make_core("l", bans=bans)
    evil = incoming(leech, b"e" * 20, ip="10.0.0.66")
    leech.message(evil, claim("s"), 0.0)
    assert evil.node is None
    leech.ban(evil, "hash_mismatch")
    assert "s" not in bans.nodes and bans.ips == {"10.0.0.66"}
    leech.ban(evil, "again")  # the same peer again: one ban, counted once
    assert bans.total == 1


def test_violations_of_one_incoming_peer_add_up_across_connections() -> None:
    bans = BanList()
    for port in (50001, 50002):  # new ephemeral port each time
        p = PeerState(4, 0.0, peer_id=b"v" * 20, ip="127.0.0.1", port=port, outgoing=False)
        assert not bans.violation(p)
    assert bans.violation(PeerState(4, 0.0, peer_id=b"v" * 20, ip="127.0.0.1", port=50003,
                                    outgoing=False))


def test_unrequested_blocks_are_dropped() -> None:
    leech = make_core("l")
    p = incoming(leech, b"j" * 20)
    leech.message(p, wire.HaveAll(), 0.0)  # choked: nothing requested
    leech.take_actions()
    leech.block(p, 0, 0, PIECE, b"\0" * PIECE, 1.0)
    assert leech.wasted == PIECE and not leech.take_actions()  # no Verify: not merged
    assert leech.bytes_from == {} and leech.picker.have_count == 0


def test_pex_is_filtered_and_rationed_per_source() -> None:
    leech = make_core("l")
    p = incoming(leech, b"x" * 20)
    junk = [("0.0.0.0", 1), ("224.0.0.1", 2), ("127.0.0.1", 3), ("255.255.255.255", 4)]
    assert leech.peering.add_from_pex(p, junk, 0.0) == 0  # loopback only from loopback
    many = [(f"10.1.{i // 250}.{i % 250 + 1}", 6881) for i in range(100)]
    assert leech.peering.add_from_pex(p, many, 0.0) == PEX_PER_MINUTE
    assert leech.peering.add_from_pex(p, many, 30.0) == 0
    assert leech.peering.add_from_pex(p, many, 61.0) == PEX_PER_MINUTE


def test_a_full_torrent_evicts_an_idle_peer_for_a_newcomer() -> None:
    seed = make_core("s", have=True, config=CoreConfig(max_peers=3))
    idle = [incoming(seed, bytes([65 + i]) * 20) for i in range(3)]
    busy = idle[0]
    seed.message(busy, wire.Interested(), 0.0)
    seed.take_actions()
    late = PeerState(4, EVICT_GRACE + 1, peer_id=b"n" * 20, ip="10.0.0.3", port=1, outgoing=False)
    assert seed.peer_connected(late, EVICT_GRACE + 1)
    closes = [a for a in seed.take_actions() if isinstance(a, Close)]
    assert len(closes) == 1 and closes[0].peer in idle[1:] and closes[0].reason == "evicted"
    assert not busy.closed


def test_members_only_serves_proven_members_and_given_addresses() -> None:
    seed = make_core("s", have=True, members_only=True)
    leech = make_core("l")
    member = incoming(seed, leech.local_id)
    seed.message(member, handshake_from(leech, seed), 0.0)
    assert not member.closed
    stranger = incoming(seed, b"z" * 20, ip="10.0.0.7")
    seed.message(stranger, claim("l"), 0.0)
    assert stranger.closed and Close(stranger, "not_member") in seed.take_actions()
    seed.add_peers([("10.0.0.8", 6881)], "given", 0.0)
    seed.take_actions()
    given = incoming(seed, b"g" * 20, ip="10.0.0.8")
    seed.message(given, claim(""), 0.0)
    assert not given.closed


def test_a_copied_peer_id_neither_displaces_nor_blocks_the_proven_peer() -> None:
    seed, leech = make_core("s", have=True), make_core("l")
    # the impostor came first, with the seeder's peer_id and no proof
    fake = incoming(leech, seed.local_id, ip="10.0.0.66")
    leech.message(fake, claim("s"), 0.0)
    assert fake.node is None
    real = PeerState(4, 1.0, peer_id=seed.local_id, ip="10.0.0.2", port=6881, outgoing=True,
                     listen_port=6881)
    assert leech.peer_connected(real, 1.0) and fake.closed  # the newcomer may prove
    leech.message(real, handshake_from(seed, leech), 1.0)
    assert real.node == "s"
    # now the impostor again, both ways or the same way: the proven connection stays
    for local_id in (b"a" * 20, b"z" * 20):  # whichever side the both-ways rule favours
        leech.local_id = local_id
        for outgoing in (False, True):
            again = PeerState(4, 20.0, peer_id=seed.local_id, ip="10.0.0.66", port=50001,
                              outgoing=outgoing)
            assert not leech.peer_connected(again, 20.0) and not real.closed


def test_a_claimed_listen_port_does_not_stop_us_dialing_the_real_peer() -> None:
    leech = make_core("l")
    leech.add_peers([("10.0.0.2", 6881)], "given", 0.0)
    leech.take_actions()
    leech.dial_done(("10.0.0.2", 6881), False, 0.0)  # the seeder was not up yet
    liar = incoming(leech, b"k" * 20, ip="10.0.0.2")
    leech.message(liar, claim("s", port=6881), 0.0)  # "I am the seeder, listening on 6881"
    assert not leech.known[("10.0.0.2", 6881)].connected
    leech.tick(5.0)
    assert Dial(("10.0.0.2", 6881)) in leech.take_actions()
