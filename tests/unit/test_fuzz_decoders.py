"""Property tests: arbitrary input never crashes a decoder with anything but its typed error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer import wire
from peer.bencode import BencodeError, bdecode, bencode
from peer.extensions import decode_ext_handshake, decode_pex
from peer.metainfo import MetainfoError, parse
from peer.wire import DecodeError, FrameDecoder, decode, decode_handshake

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Bencode-shaped values, so mutations reach deep into the decoders rather than failing at byte 0.
bvalues = st.recursive(
    st.integers() | st.binary(max_size=40),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.binary(max_size=10), kids,
                                                               max_size=5),
    max_leaves=20,
)


def _mutations(data: bytes, draw_bytes: bytes) -> bytes:
    if not data:
        return draw_bytes
    k = draw_bytes[0] % len(data) if draw_bytes else 0
    return data[:k] + draw_bytes[1:] + data[k + len(draw_bytes[1:2]):]


@FUZZ
@given(st.binary(max_size=300))
def test_bdecode_bytes(data: bytes) -> None:
    try:
        bdecode(data)
    except BencodeError:
        pass


@FUZZ
@given(bvalues, st.binary(max_size=8))
def test_bdecode_round_trip_and_mutations(value: object, noise: bytes) -> None:
    raw = bencode(value)
    assert bencode(bdecode(raw)) == raw
    try:
        bdecode(_mutations(raw, noise))
    except BencodeError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_wire_decode(body: bytes) -> None:
    try:
        msg = decode(body)
    except DecodeError as e:
        assert e.reason in ("bad_length", "unknown_id")
    else:
        assert wire.encode(msg)[4:] == body  # whatever decodes re-encodes to the same bytes


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(0, 300))
def test_frame_decoder(chunks: list, max_frame: int) -> None:
    fd = FrameDecoder(max_frame=max_frame)
    try:
        for c in chunks:
            for msg in fd.feed(c):
                assert len(wire.encode(msg)) <= max_frame + 4
            assert fd.buffered <= max_frame + 4
    except DecodeError as e:
        assert e.reason in ("bad_length", "unknown_id", "frame_too_large")


@FUZZ
@given(st.binary(min_size=60, max_size=76))
def test_decode_handshake(data: bytes) -> None:
    for candidate in (data, b"\x13BitTorrent protocol" + data[20:]):
        try:
            hs = decode_handshake(candidate)
        except DecodeError as e:
            assert e.reason == "bad_handshake"
        else:
            assert len(hs.info_hash) == 20 and len(hs.peer_id) == 20


@FUZZ
@given(st.binary(max_size=200) | bvalues.map(bencode))
def test_decode_ext_handshake(payload: bytes) -> None:
    try:
        decode_ext_handshake(payload)
    except DecodeError as e:
        assert e.reason in ("bad_bencode", "bad_ext_handshake")


_ext_dicts = st.fixed_dictionaries({}, optional={
    b"m": st.dictionaries(st.binary(max_size=8), st.integers(-5, 300) | st.binary(max_size=3)),
    b"p": st.integers(-5, 70000) | st.binary(max_size=3),
    b"meshbed": st.dictionaries(st.sampled_from([b"node", b"mesh", b"block", b"x"]),
                                st.integers(-2, 2**31) | st.binary(max_size=5)),
}).map(bencode)


@FUZZ
@given(_ext_dicts)
def test_decode_ext_handshake_structured(payload: bytes) -> None:
    try:
        decode_ext_handshake(payload)
    except DecodeError as e:
        assert e.reason == "bad_ext_handshake"


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    k: st.binary(max_size=80) | st.integers() for k in
    (b"added", b"added.f", b"added6", b"dropped", b"dropped6")}).map(bencode)
    | st.binary(max_size=100))
def test_decode_pex(payload: bytes) -> None:
    try:
        added, dropped = decode_pex(payload)
    except DecodeError as e:
        assert e.reason == "bad_pex"
    else:
        assert len(added) <= 200 and len(dropped) <= 200
        assert all(0 < port < 65536 for _, port in added + dropped)


_info = st.fixed_dictionaries({}, optional={
    b"name": st.sampled_from([b"f.bin", b"", b"..", b"a/b", b"\xff"]) | st.binary(max_size=5),
    b"length": st.integers(-1, 70000) | st.binary(max_size=2),
    b"piece length": st.sampled_from([16384, 32768, 1000, 0, -1, 1 << 40]),
    b"pieces": st.binary(max_size=100) | st.integers(),
    b"meta version": st.integers(0, 3),
    b"file tree": bvalues,
    b"files": bvalues,
})


@FUZZ
@given(st.binary(max_size=300) | st.fixed_dictionaries({b"info": _info},
                                                       optional={b"piece layers": bvalues}
                                                       ).map(bencode))
def test_metainfo_parse(data: bytes) -> None:
    try:
        m = parse(data)
    except MetainfoError:
        pass
    else:
        assert all(len(h) == 20 for h in m.piece_hashes)
        assert m.num_pieces == -(-m.length // m.piece_length)
        assert m.length > 0 and m.name not in ("", ".", "..")
