"""Who is banned for a piece that fails its hash (peer/core/blame.py, through the pure core):
the sole source; with several sources, whoever's units differ from the good copy once it
passes; never an honest peer that only finished what a banned liar started."""

from __future__ import annotations

import os

from peer import wire
from peer.core import Ban, BanList, PeerState, SwarmCore, Verify
from peer.core.bans import offender_key
from peer.core.blame import STRIKES_TO_BAN, Blame, digest_units
from peer.picker import UNIT, PiecePicker
from tests.unit.core_pump import PIECE, make_core

GOOD = os.urandom(PIECE)
UNITS = PIECE // UNIT


def peer(core: SwarmCore, name: str, ip: str) -> PeerState:
    p = PeerState(1, 0.0, peer_id=name.encode() * 20, ip=ip, port=1, outgoing=True,
                  listen_port=7000)
    assert core.peer_connected(p, 0.0)
    core.message(p, wire.HaveAll(), 0.0)
    return p


def bans_of(core: SwarmCore) -> list[PeerState]:
    return [a.peer for a in core.take_actions() if isinstance(a, Ban)]


def mixed_pieces(n: int = 1) -> tuple[SwarmCore, PeerState, PeerState]:
    """``n`` pieces: the first half of each from ``liar`` (bytes flipped), the rest from
    ``honest`` (the liar rejected it); all complete, waiting for their hash checks."""
    core = make_core(n, False, "l", bans=BanList())
    liar, honest = peer(core, "p", "10.0.0.1"), peer(core, "q", "10.0.0.2")
    core.message(liar, wire.Unchoke(), 0.0)
    half = UNITS // 2
    assert {k[0] for k in liar.outstanding} == set(range(n))
    for i in range(n):
        for u in range(half):
            bad = bytes(b ^ 0xFF for b in GOOD[u * UNIT:(u + 1) * UNIT])
            core.block(liar, i, u * UNIT, UNIT, bad, 0.1)
        for u in range(half, UNITS):
            core.message(liar, wire.Reject(i, u * UNIT, UNIT), 0.1)
    core.message(honest, wire.Unchoke(), 0.2)
    for key in sorted(honest.outstanding):
        core.block(honest, *key, GOOD[key[1]:key[1] + key[2]], 0.3)
    assert sum(isinstance(a, Verify) for a in core.take_actions()) == n
    return core, liar, honest


def test_a_piece_from_two_peers_strikes_both_and_its_good_copy_names_the_liar() -> None:
    core, liar, honest = mixed_pieces()
    bans = core.bans
    core.piece_verified(0, False, 1.0)
    assert bans_of(core) == []  # one strike each: either may have lied
    assert core.blame.strikes == {offender_key(liar): 1, offender_key(honest): 1}
    # fetched again, whole, from the honest peer only (the liar rejected half of it)
    assert honest.outstanding and not liar.outstanding
    for key in sorted(honest.outstanding):
        core.block(honest, *key, GOOD[key[1]:key[1] + key[2]], 2.0)
    core.take_actions()
    core.piece_verified(0, True, 2.5)
    assert bans_of(core) == [liar]
    assert bans.refuses(liar) and not bans.refuses(honest)
    assert core.blame.strikes[offender_key(honest)] == 0  # forgiven: its units were right
    assert core.picker.has(0)


def test_an_honest_peer_that_finished_a_banned_liars_pieces_is_not_struck() -> None:
    # the flake this module came from: the liar, banned for another piece, had started
    # these; the seeder finished them; they failed. Before, each was a strike of the
    # seeder's, and the second one banned the only honest source.
    core, liar, honest = mixed_pieces(STRIKES_TO_BAN)
    core.ban(liar, "hash_mismatch")
    core.take_actions()
    for i in range(STRIKES_TO_BAN):
        core.piece_verified(i, False, 1.0)
    assert bans_of(core) == [] and not core.bans.refuses(honest)
    assert offender_key(honest) not in core.blame.strikes
    assert honest.outstanding  # and it is asked for them again


def test_a_sole_source_is_banned_at_once_and_two_strikes_ban_without_a_verdict() -> None:
    bans = BanList()
    blame = Blame(bans)
    a = PeerState(1, 0.0, peer_id=b"a" * 20, ip="10.0.0.1", port=1, outgoing=True)
    b = PeerState(1, 0.0, peer_id=b"b" * 20, ip="10.0.0.2", port=1, outgoing=True)
    assert blame.failed(0, [a], None, None) == [a]
    # virtual payloads (the simulator): no bytes, no verdict, strikes still count
    assert blame.failed(1, [a, b], None, None) == []
    assert blame.failed(2, [a, b], None, None) == [a, b]
    assert blame.passed(1, None) == []
    # b sent a copy of a unit that a's later copy replaced: the bytes are a's alone
    c = PeerState(1, 0.0, peer_id=b"c" * 20, ip="10.0.0.3", port=1, outgoing=True)
    d = PeerState(1, 0.0, peer_id=b"d" * 20, ip="10.0.0.4", port=1, outgoing=True)
    assert blame.failed(3, [c, d], [c] * UNITS, GOOD) == [c]
    assert offender_key(d) not in blame.strikes


def test_the_picker_names_the_sender_of_every_unit_once_a_second_peer_sends() -> None:
    picker = PiecePicker(1, lambda i: PIECE)
    a, b = object(), object()
    picker.pick(lambda i: True, True, PIECE, PIECE, lambda i: False)
    assert not picker.received(0, 0, GOOD[:UNIT], a)
    assert picker.partial[0].units_from is None  # one sender so far: nothing to keep
    assert not picker.received(0, UNIT, GOOD[UNIT:4 * UNIT], b)
    assert not picker.received(0, 2 * UNIT, GOOD[2 * UNIT:3 * UNIT], a)  # a later copy wins
    assert picker.partial[0].units_from == [a, b, a, b] + [None] * (UNITS - 4)
    # a verdict compares only a sender's own units
    bad = bytearray(GOOD)
    bad[0] ^= 1
    assert digest_units(bad, [1, 3]) == digest_units(GOOD, [1, 3])
    assert digest_units(bad, [0]) != digest_units(GOOD, [0])
