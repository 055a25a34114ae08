"""The core's BitTorrent-citizen rules: request queue semantics (reqq, BEP 6 rejects) and
serving ut_metadata (BEP 9)."""

from __future__ import annotations

import pytest
from core_pump import make_core

from peer import extensions as ext
from peer import metadata, wire
from peer.core import PeerState, ProtocolError, Send, SwarmCore
from peer.core.swarm import MAX_EXCESS_REQUESTS, MAX_QUEUED_REQUESTS


def _unchoked_peer(fast: bool) -> tuple[SwarmCore, PeerState]:
    seed = make_core(4, True, "s")
    p = PeerState(4, 0.0, peer_id=b"q" * 20, ip="1.2.3.4", port=1, outgoing=False, fast=fast)
    assert seed.peer_connected(p, 0.0)
    seed.message(p, wire.Interested(), 0.0)  # a free slot: unchoked at once
    assert not p.am_choking
    seed.take_actions()
    return seed, p


@pytest.mark.parametrize("fast", [True, False])
def test_requests_over_reqq_are_rejected_or_dropped_not_fatal(fast: bool) -> None:
    seed, p = _unchoked_peer(fast)
    for i in range(MAX_QUEUED_REQUESTS):
        seed.message(p, wire.Request(i % 4, (i // 4) * 16 % 65536, 16384), 1.0)
    seed.take_actions()
    assert len(p.queue) == MAX_QUEUED_REQUESTS
    for _ in range(5):
        seed.message(p, wire.Request(1, 0, 16384), 2.0)
    acts = seed.take_actions()
    rejects = [m for a in acts if isinstance(a, Send) for m in a.msgs]
    assert rejects == ([wire.Reject(1, 0, 16384)] * 5 if fast else [])
    assert not p.closed and len(p.queue) == MAX_QUEUED_REQUESTS
    assert seed.requests_rejected == 5


def test_a_peer_far_beyond_reqq_is_cut_off() -> None:
    seed, p = _unchoked_peer(True)
    for _ in range(MAX_QUEUED_REQUESTS + MAX_EXCESS_REQUESTS):
        seed.message(p, wire.Request(0, 0, 16384), 1.0)
    seed.take_actions()
    with pytest.raises(ProtocolError) as e:
        seed.message(p, wire.Request(0, 0, 16384), 1.0)
    assert e.value.reason == "request_flood"


def test_ut_metadata_is_served_piece_by_piece_and_bounded() -> None:
    seed = make_core(4, True, "s")
    info = b"d4:name1:x" + b"0" * 40000 + b"e"
    seed.metadata = metadata.MetadataServer(info)
    p = PeerState(4, 0.0, peer_id=b"m" * 20, ip="1.2.3.4", port=1, outgoing=False)
    seed.peer_connected(p, 0.0)
    seed.message(p, wire.Extended(0, ext.encode_ext_handshake(
        ext.ExtHandshake(m={ext.UT_METADATA: 9}))), 0.0)
    seed.take_actions()

    def ask(piece: int) -> metadata.MetaMsg:
        seed.message(p, wire.Extended(ext.UT_METADATA_ID, metadata.encode_metadata_msg(
            metadata.MetaRequest(piece))), 1.0)
        (act,) = [a for a in seed.take_actions() if isinstance(a, Send)]
        (msg,) = act.msgs
        assert isinstance(msg, wire.Extended) and msg.ext_id == 9
        return metadata.decode_metadata_msg(msg.payload)

    got = [ask(i) for i in range(3)]
    assert all(isinstance(m, metadata.MetaData) for m in got)
    assert b"".join(m.data for m in got) == info  # type: ignore[union-attr]
    assert isinstance(ask(3), metadata.MetaReject)  # past the end
    for _ in range(64):
        ask(0)
    assert isinstance(ask(0), metadata.MetaReject)  # answers per connection are bounded
    with pytest.raises(ProtocolError):
        seed.message(p, wire.Extended(ext.UT_METADATA_ID, b"garbage"), 2.0)
