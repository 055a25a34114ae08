"""The engine core in pure form: events in, actions out (no sockets, no clock)."""

from __future__ import annotations

import random
from typing import Optional

import pytest

from peer import extensions as ext
from peer import wire
from peer.core import (
    Ban,
    BanList,
    Close,
    Completed,
    CoreConfig,
    Dial,
    PeerState,
    ProtocolError,
    Send,
    Serve,
    SwarmCore,
    Timer,
    Verify,
)
from tests.unit.core_pump import PIECE, Pump, connect, make_core, swarm_log


def one_send(core: SwarmCore) -> Send:
    (act,) = core.take_actions()
    assert isinstance(act, Send)
    return act


def test_a_leecher_fetches_every_piece_from_a_seeder_with_virtual_payloads() -> None:
    seed, leech = make_core(8, True, "s"), make_core(8, False, "l")
    pa, pb = connect(leech, seed)
    pump = Pump(seed, leech)
    pump.run()
    assert leech.complete and leech.picker.have_count == 8
    assert leech.downloaded == seed.uploaded == 8 * PIECE
    assert leech.bytes_from == {"s": 8 * PIECE} and seed.bytes_to == {"l": 8 * PIECE}
    assert any(isinstance(a, Completed) for a in pump.seen)
    # each piece asked for once, whole, in blocks sized to the (virtual, unmeasured) rate
    reqs = [m for a in pump.seen if isinstance(a, Send) for m in a.msgs
            if isinstance(m, wire.Request)]
    assert sorted((r.index, r.begin) for r in reqs) == [
        (i, b) for i in range(8) for b in range(0, PIECE, wire.BLOCK)]
    assert {r.length for r in reqs} == {wire.BLOCK}
    # a complete leecher that uploads keeps the seed? no: two seeds close
    assert pa.closed and pb.closed


def test_the_first_messages_announce_what_we_hold() -> None:
    seed, leech = make_core(4, True, "s"), make_core(4, False, "l")
    p = PeerState(4, 0.0, peer_id=b"x" * 20, ip="1.2.3.4", port=1, outgoing=True)
    assert seed.peer_connected(p, 0.0)
    send = one_send(seed)
    assert isinstance(send, Send) and isinstance(send.msgs[0], wire.HaveAll)
    assert isinstance(send.msgs[1], wire.Extended) and send.msgs[1].ext_id == 0
    q = PeerState(4, 0.0, peer_id=b"x" * 20, ip="1.2.3.4", port=1, outgoing=True)
    assert leech.peer_connected(q, 0.0)
    send = one_send(leech)
    assert isinstance(send.msgs[0], wire.HaveNone)


def test_have_makes_us_interested_and_unchoke_starts_requests() -> None:
    core = make_core(4, False, "l")
    p = PeerState(4, 0.0, peer_id=b"p" * 20, ip="1.2.3.4", port=1, outgoing=True, block=PIECE)
    p.rate_from.rate = 100e6  # a fast meshbed peer: whole-piece blocks
    core.peer_connected(p, 0.0)
    core.take_actions()
    core.message(p, wire.Have(2), 1.0)
    send = one_send(core)
    assert send.msgs == [wire.Interested()]
    assert core.picker.availability(2) == 1
    core.message(p, wire.Unchoke(), 2.0)
    send = one_send(core)
    assert send.msgs == [wire.Request(2, 0, PIECE)]
    assert p.outstanding == {(2, 0, PIECE): 2.0} and p.out_bytes == PIECE
    # the block comes: verification is the driver's job
    core.block(p, 2, 0, PIECE, None, 3.0)
    acts = core.take_actions()
    assert Verify(2, None) in acts
    assert not p.outstanding and p.out_bytes == 0
    core.piece_verified(2, True, 3.5)
    acts = core.take_actions()
    # the sender had it: no HAVE back, and it has nothing else for us
    assert [a for a in acts if isinstance(a, Send)] == [Send(p, [wire.NotInterested()])]
    assert core.picker.has(2)


def test_a_choke_without_fast_gives_requests_back_and_a_reject_frees_the_block() -> None:
    core = make_core(4, False, "l")
    p = PeerState(4, 0.0, peer_id=b"p" * 20, ip="1.2.3.4", port=1, outgoing=True,
                  fast=False, block=PIECE)
    core.peer_connected(p, 0.0)
    core.message(p, wire.Bitfield.full(4), 0.0)
    core.message(p, wire.Unchoke(), 0.0)
    assert p.outstanding
    core.message(p, wire.Choke(), 1.0)
    assert not p.outstanding and not core.picker.partial
    with pytest.raises(ProtocolError):
        core.message(p, wire.Reject(0, 0, PIECE), 1.0)  # fast was not negotiated


def test_requests_are_served_only_when_unchoked_and_rejected_otherwise() -> None:
    seed = make_core(4, True, "s")
    p = PeerState(4, 0.0, peer_id=b"p" * 20, ip="1.2.3.4", port=1, outgoing=False)
    seed.peer_connected(p, 0.0)
    seed.take_actions()
    seed.message(p, wire.Request(1, 0, 16384), 0.0)
    assert seed.take_actions() == [Send(p, [wire.Reject(1, 0, 16384)])]
    seed.message(p, wire.Interested(), 0.0)  # a free slot: unchoked at once
    assert seed.take_actions() == [Send(p, [wire.Unchoke()])]
    seed.message(p, wire.Request(1, 0, 16384), 0.0)
    seed.message(p, wire.Request(1, 16384, 16384), 0.0)
    assert seed.take_actions() == [Serve(p)]  # one Serve until the queue is drained
    assert seed.next_upload(p) == (1, 0, 16384)
    seed.message(p, wire.Cancel(1, 16384, 16384), 0.0)
    assert seed.next_upload(p) is None
    with pytest.raises(ProtocolError, match="request_too_large"):
        seed.message(p, wire.Request(1, 0, 1 << 20), 0.0)
    with pytest.raises(ProtocolError, match="bad_index"):
        seed.message(p, wire.Have(9), 0.0)


def test_a_bad_piece_from_one_source_bans_it() -> None:
    bans = BanList()
    core = make_core(2, False, "l", bans=bans)
    p = PeerState(2, 0.0, peer_id=b"p" * 20, ip="1.2.3.4", port=1, outgoing=True,
                  listen_port=7000, block=PIECE)
    p.rate_from.rate = 100e6  # a fast meshbed peer: whole-piece blocks
    core.peer_connected(p, 0.0)
    core.message(p, wire.HaveAll(), 0.0)
    core.message(p, wire.Unchoke(), 0.0)
    req = p.outstanding.copy()
    core.take_actions()
    (key,) = list(req)[:1] if len(req) == 1 else [sorted(req)[0]]
    core.block(p, key[0], 0, PIECE, None, 1.0)
    core.take_actions()
    core.piece_verified(key[0], False, 1.0)
    acts = core.take_actions()
    assert Ban(p, "hash_mismatch") in acts
    assert core.rejected == {"hash_mismatch": 1}
    assert bans.is_banned("1.2.3.4", 7000, None) and not core.picker.has(key[0])
    refused = PeerState(2, 2.0, peer_id=b"q" * 20, ip="1.2.3.4", port=7000, outgoing=True)
    assert not core.peer_connected(refused, 2.0)


def test_addresses_are_dialed_with_backoff() -> None:
    core = make_core(4, False, "l")
    assert core.add_peers([("10.0.0.5", 1), ("10.0.0.6", 2)], "given", 0.0) == 2
    assert core.take_actions() == [Dial(("10.0.0.5", 1)), Dial(("10.0.0.6", 2))]
    core.dial_done(("10.0.0.5", 1), False, 0.0)
    core.tick(1.0)  # 2 s backoff: not yet
    assert not [a for a in core.take_actions() if isinstance(a, Dial)]
    core.tick(2.5)
    assert Dial(("10.0.0.5", 1)) in core.take_actions()


def test_a_snubbing_peer_loses_its_requests_then_its_connection() -> None:
    core = make_core(4, False, "l")
    p = PeerState(4, 0.0, peer_id=b"p" * 20, ip="1.2.3.4", port=1, outgoing=True, block=PIECE)
    core.peer_connected(p, 0.0)
    core.message(p, wire.HaveAll(), 0.0)
    core.message(p, wire.Unchoke(), 0.5)  # after the connection's initial "choked" state
    core.take_actions()
    asked = len(p.outstanding)
    assert asked > 1
    core.tick(31.0)  # no block for 30 s: cancelled, one probe block
    acts = core.take_actions()
    cancels = [m for a in acts if isinstance(a, Send) for m in a.msgs if isinstance(m, wire.Cancel)]
    assert len(cancels) == asked and p.snubbed and len(p.outstanding) == 1
    core.tick(62.0)  # the probe failed too: reconnect
    assert Close(p, "snubbed") in core.take_actions()


def test_the_same_seed_gives_the_same_actions() -> None:
    def run(seed: int) -> list[str]:
        cores = [make_core(16, i == 0, f"n{i}", seed=seed + i) for i in range(4)]
        for i in range(1, 4):
            for j in range(i):
                connect(cores[i], cores[j])
        pump = Pump(*cores)
        pump.run()
        assert all(c.complete for c in cores)
        return [repr(a) for a in pump.seen]

    assert run(7) == run(7)


def test_pex_tells_a_newcomer_the_other_peers_soon_after_its_handshake() -> None:
    core = make_core(4, True, "s")
    others = []
    for k in range(3):
        p = PeerState(4, 0.0, peer_id=bytes([65 + k]) * 20, ip=f"10.0.0.{k + 2}", port=5000,
                      outgoing=True, listen_port=6881)
        assert core.peer_connected(p, 0.0)
        others.append(p)
    core.take_actions()
    hs = ext.local_handshake(port=6881, client="x", reqq=1, node="n0", mesh="m", block=PIECE)
    core.message(others[0], wire.Extended(0, ext.encode_ext_handshake(hs)), 1.0)
    (timer,) = core.take_actions()
    assert isinstance(timer, Timer) and timer.at == pytest.approx(1.2)
    core.timer(timer.token, 1.2)
    send = one_send(core)
    (msg,) = send.msgs
    assert isinstance(msg, wire.Extended) and msg.ext_id == ext.UT_PEX_ID
    added, dropped = ext.decode_pex(msg.payload)
    assert added == [("10.0.0.3", 6881), ("10.0.0.4", 6881)] and dropped == []
    # a peer learned by PEX is dialed
    leech = make_core(4, False, "l")
    q = PeerState(4, 0.0, peer_id=b"q" * 20, ip="10.0.0.9", port=1, outgoing=True)
    leech.peer_connected(q, 0.0)
    leech.take_actions()
    leech.message(q, msg, 2.0)
    assert [a for a in leech.take_actions() if isinstance(a, Dial)] == [
        Dial(("10.0.0.3", 6881)), Dial(("10.0.0.4", 6881))]


def test_a_batch_of_haves_equals_the_messages_one_by_one() -> None:
    def fresh() -> tuple[SwarmCore, list[PeerState]]:
        core = make_core(8, False, "l")
        peers = [PeerState(8, 0.0, peer_id=bytes([65 + k]) * 20, ip=f"10.0.0.{k}", port=1,
                           outgoing=True, block=PIECE) for k in range(3)]
        for p in peers:
            core.peer_connected(p, 0.0)
            core.message(p, wire.Unchoke(), 0.5)
        core.take_actions()
        return core, peers

    items = [(0, 1), (1, 1), (0, 2), (2, 7), (0, 1), (1, 3)]
    one, p1 = fresh()
    for k, i in items:
        one.message(p1[k], wire.Have(i), 1.0)
    batch, p2 = fresh()
    batch.haves([(p2[k], i) for k, i in items], 1.0)
    assert [one.picker.availability(i) for i in range(8)] == \
        [batch.picker.availability(i) for i in range(8)]
    assert [(a.pmask, a.am_interested, a.useful, bool(a.outstanding)) for a in p1] == \
        [(b.pmask, b.am_interested, b.useful, bool(b.outstanding)) for b in p2]


SWARM_DIGEST = """
import hashlib
from tests.unit.core_pump import swarm_log
print(hashlib.sha256("\\n".join(swarm_log(7)).encode()).hexdigest())
"""


def test_the_same_seed_gives_the_same_run_whatever_the_hash_seed() -> None:
    """Nothing may depend on set order of str or object hashes (the simulator's promise)."""
    import hashlib
    import os
    import subprocess
    import sys

    here = hashlib.sha256("\n".join(swarm_log(7)).encode()).hexdigest()
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    there = subprocess.run([sys.executable, "-c", SWARM_DIGEST], check=True, text=True,
                           capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed})
    assert there.stdout.strip() == here


def _peer_of(core: SwarmCore, node: str) -> Optional[PeerState]:
    return next((p for p in core.peers.values() if p.node == node), None)


def test_frame_len_matches_the_encoding_of_every_message() -> None:
    msgs: list[wire.Message] = [
        wire.KeepAlive(), wire.Choke(), wire.Unchoke(), wire.Interested(), wire.NotInterested(),
        wire.HaveAll(), wire.HaveNone(), wire.Have(3), wire.Suggest(1), wire.AllowedFast(2),
        wire.Request(1, 0, 16384), wire.Cancel(1, 0, 16384), wire.Reject(1, 0, 16384),
        wire.Port(6881), wire.Piece(1, 0, b"x" * 100), wire.Bitfield.full(13),
        wire.Extended(1, b"abc"),
    ]
    for m in msgs:
        assert wire.frame_len(m) == len(wire.encode(m)), m


def test_hostile_modes_are_subclasses_outside_the_ordinary_core() -> None:
    from peer.hostile import LyingCore, StallingCore

    liar = LyingCore(4, PIECE, 4 * PIECE, (), rng=random.Random(1), local_id=b"L" * 20)
    p = PeerState(4, 0.0, peer_id=b"p" * 20, ip="1.2.3.4", port=1, outgoing=False)
    liar.peer_connected(p, 0.0)
    assert one_send(liar).msgs == [wire.HaveAll()]  # claims every piece it lacks
    liar.message(p, wire.Interested(), 0.0)
    liar.take_actions()
    liar.message(p, wire.Request(2, 0, 16384), 0.0)
    assert liar.take_actions() == [Serve(p)]  # and "serves" them
    staller = StallingCore(4, PIECE, 4 * PIECE, range(4), rng=random.Random(1),
                           local_id=b"S" * 20)
    q = PeerState(4, 0.0, peer_id=b"q" * 20, ip="1.2.3.4", port=1, outgoing=False)
    staller.peer_connected(q, 0.0)
    staller.message(q, wire.Interested(), 0.0)
    staller.take_actions()
    staller.message(q, wire.Request(2, 0, 16384), 0.0)
    assert staller.take_actions() == [] and staller.next_upload(q) is None  # never answered
    ordinary = make_core(4, True, "o")
    r = PeerState(4, 0.0, peer_id=b"r" * 20, ip="1.2.3.4", port=1, outgoing=False)
    ordinary.peer_connected(r, 0.0)
    ordinary.message(r, wire.Interested(), 0.0)
    ordinary.take_actions()
    ordinary.message(r, wire.Request(2, 0, 16384), 0.0)
    assert ordinary.take_actions() == [Serve(r)]


def test_neediest_re_ranks_every_tick_so_the_peer_furthest_behind_gets_a_slot() -> None:
    """A seed with one regular slot (+1 optimistic) and three interested leechers: once the
    choked one lacks the most, the next tick (1 s later) unchokes it; half a second is too
    soon. Progress drifts apart on real links, and only re-ranking pulls it back."""
    seed = make_core(8, True, "s", config=CoreConfig(upload_slots=1))
    peers = []
    for i, held in enumerate((range(6), range(5), range(1))):  # missing 2, 3, 7
        p = PeerState(8, 0.0, peer_id=bytes([65 + i]) * 20, ip=f"10.0.0.{i + 2}", port=1,
                      outgoing=False)
        seed.peer_connected(p, 0.0)
        for piece in held:
            seed.message(p, wire.Have(piece), 0.0)
        seed.message(p, wire.Interested(), 0.0)
        peers.append(p)
    seed.tick(0.0)
    far_behind = peers[2]
    assert not far_behind.am_choking  # the regular slot: it lacks the most
    (waiting,) = [p for p in peers[:2] if p.am_choking]  # the other one is optimistic
    (lucky,) = [p for p in peers[:2] if p is not waiting]
    for piece in range(1, 7):  # the one behind catches up: it lacks 1
        seed.message(far_behind, wire.Have(piece), 0.1)
    for piece in range(8):  # the optimistic one lacks 1 too
        if not lucky.pmask & seed.picker.bits[piece] and piece != 7:
            seed.message(lucky, wire.Have(piece), 0.1)
    seed.tick(0.5)
    assert waiting.am_choking
    seed.tick(1.0)
    assert not waiting.am_choking  # now the neediest: its slot came at the next tick
