"""BEP 9 ut_metadata codec, assembler/server and magnet links (pure logic)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer import extensions
from peer.metadata import (
    METADATA_PIECE,
    MetaData,
    MetadataAssembler,
    MetadataError,
    MetadataServer,
    MetaReject,
    MetaRequest,
    decode_metadata_msg,
    encode_metadata_msg,
    make_magnet,
    parse_magnet,
)

INFO = b"d4:name3:abc" + b"5:pad__" + b"40000:" + b"x" * 40000 + b"e"
IH = hashlib.sha1(INFO).digest()


@pytest.mark.parametrize("msg", [MetaRequest(3), MetaReject(0), MetaData(2, 40000, b"abc")])
def test_round_trip(msg: object) -> None:
    assert decode_metadata_msg(encode_metadata_msg(msg)) == msg  # type: ignore[arg-type]


def test_server_to_assembler_out_of_order() -> None:
    server = MetadataServer(INFO)
    asm = MetadataAssembler(IH, server.size)
    asked = [asm.next_request() for _ in range(4)]
    assert asked == [0, 1, 2, None]
    answers = [server.answer(MetaRequest(i)) for i in (2, 0, 1)]
    done = [asm.receive(decode_metadata_msg(encode_metadata_msg(a))) for a in answers]  # type: ignore[arg-type]
    assert done == [False, False, True] and asm.info_bytes == INFO
    assert server.answer(MetaRequest(3)) == MetaReject(3)
    assert server.answer(MetaReject(0)) is None


def test_hash_mismatch_starts_over() -> None:
    asm = MetadataAssembler(IH, len(INFO))
    bad = INFO.replace(b"abc", b"abd")
    for i in range(3):
        part = bad[i * METADATA_PIECE:(i + 1) * METADATA_PIECE]
        if i < 2:
            asm.receive(MetaData(i, len(INFO), part))
    with pytest.raises(MetadataError) as e:
        asm.receive(MetaData(2, len(INFO), bad[2 * METADATA_PIECE:]))
    assert e.value.reason == "metadata_hash_mismatch" and not asm.done
    assert asm.next_request() == 0  # everything is asked again


@pytest.mark.parametrize("msg", [
    MetaData(0, 40001, b"x" * METADATA_PIECE),  # wrong total size
    MetaData(5, 40000, b"x"),  # out of range
    MetaData(2, 40000, b"x" * 5),  # last piece of the wrong length
])
def test_assembler_rejects(msg: MetaData) -> None:
    with pytest.raises(MetadataError):
        MetadataAssembler(IH, len(INFO)).receive(msg)


def test_size_limits() -> None:
    with pytest.raises(MetadataError):
        MetadataAssembler(IH, 0)
    with pytest.raises(MetadataError):
        MetadataAssembler(IH, 10**9)


def test_ext_handshake_metadata_fields() -> None:
    h = extensions.local_handshake(port=1, client="c", reqq=5, node="n", mesh="m", block=16384,
                                   metadata_size=1234)
    back = extensions.decode_ext_handshake(extensions.encode_ext_handshake(h))
    assert back.m[extensions.UT_METADATA] == extensions.UT_METADATA_ID
    assert back.metadata_size == 1234
    huge = extensions.encode_ext_handshake(extensions.ExtHandshake(metadata_size=1 << 30))
    assert extensions.decode_ext_handshake(huge).metadata_size is None


def test_magnet_hex_base32_v2_trackers_peers() -> None:
    v2 = hashlib.sha256(INFO).digest()
    uri = make_magnet(IH, name="a b", info_hash_v2=v2, trackers=("udp://t:1", "http://u/a"),
                      peers=(("10.0.0.1", 5), ("::1", 6)))
    m = parse_magnet(uri)
    assert (m.info_hash, m.info_hash_v2, m.name) == (IH, v2, "a b")
    assert m.trackers == ["udp://t:1", "http://u/a"]
    assert m.peers == [("10.0.0.1", 5), ("::1", 6)]
    b32 = base64.b32encode(IH).decode().lower()
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32}&tr=wss://x").info_hash == IH
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32}&tr=wss://x").trackers == []


@pytest.mark.parametrize("uri", [
    "http://x", "magnet:?dn=x", "magnet:?xt=urn:btih:zz", "magnet:?xt=urn:btih:" + "g" * 40,
    "magnet:?xt=urn:btmh:1114" + "00" * 32, "magnet:?xt=urn:btih:" + "0" * 40 + "&x.pe=h:0",
    "magnet:?xt=urn:btih:" + "0" * 40 + "&x.pe=bad/host:1", "magnet:?" + "a=b&" * 10000,
])
def test_bad_magnets(uri: str) -> None:
    with pytest.raises(MetadataError):
        parse_magnet(uri)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_decode_fuzz(data: bytes) -> None:
    try:
        msg = decode_metadata_msg(data)
    except MetadataError:
        return
    asm = MetadataAssembler(IH, len(INFO))
    if isinstance(msg, MetaData):
        try:
            asm.receive(msg)
        except MetadataError:
            pass


@FUZZ
@given(st.text(max_size=300))
def test_magnet_fuzz(text: str) -> None:
    for uri in (text, "magnet:?" + text, "magnet:?xt=urn:btih:" + "a" * 40 + "&" + text):
        try:
            parse_magnet(uri)
        except MetadataError:
            pass
