"""BEP 10 extended handshake and BEP 11 ut_pex codecs."""

from __future__ import annotations

import pytest

from peer.bencode import bdecode, bencode
from peer.extensions import (
    MESHBED,
    MESHBED_ID,
    PEX_MAX_PEERS,
    UT_PEX,
    UT_PEX_ID,
    ExtHandshake,
    decode_ext_handshake,
    decode_pex,
    encode_ext_handshake,
    encode_pex,
    local_handshake,
)
from peer.wire import DecodeError

pytestmark = pytest.mark.timeout(30)


def test_ids_and_names() -> None:
    assert (UT_PEX, UT_PEX_ID, MESHBED, MESHBED_ID) == ("ut_pex", 1, "meshbed_v1", 2)


def test_handshake_round_trip() -> None:
    h = local_handshake(port=6881, client="meshbed 0.1.0", reqq=500, node="leechers-3",
                        mesh="demo", block=1 << 20)
    raw = encode_ext_handshake(h)
    d = bdecode(raw)
    assert d[b"m"] == {b"ut_pex": 1, b"meshbed_v1": 2}
    assert d[b"meshbed"] == {b"node": b"leechers-3", b"mesh": b"demo", b"block": 1 << 20}
    assert (d[b"p"], d[b"v"], d[b"reqq"]) == (6881, b"meshbed 0.1.0", 500)
    assert decode_ext_handshake(raw) == h


def test_handshake_minimal_and_foreign() -> None:
    assert decode_ext_handshake(b"de") == ExtHandshake(m={})
    h = ExtHandshake(m={"ut_pex": 3})
    assert decode_ext_handshake(encode_ext_handshake(h)) == h
    # What libtorrent sends: extra keys are ignored; a non-UTF-8 client name is tolerated.
    lt_like = bencode({"m": {"ut_metadata": 2, "ut_pex": 1, "lt_donthave": 7},
                       "metadata_size": 1234, "p": 0, "v": b"libtorrent \xff",
                       "yourip": b"\x7f\0\0\x01", "reqq": 500, "upload_only": 0,
                       "meshbed": {"node": "a", "mesh": "b", "block": 16384, "extra": 1}})
    got = decode_ext_handshake(lt_like)
    assert got.m == {"ut_metadata": 2, "ut_pex": 1, "lt_donthave": 7}
    assert got.port is None and got.reqq == 500 and got.client is not None
    assert got.client.startswith("libtorrent")
    assert got.meshbed == {"node": "a", "mesh": "b", "block": 16384}


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"d1:m", "bad_bencode"),
        (b"li1ee", "bad_ext_handshake"),
        (bencode({"m": [1]}), "bad_ext_handshake"),
        (bencode({"m": {"ut_pex": b"1"}}), "bad_ext_handshake"),
        (bencode({"m": {"ut_pex": 256}}), "bad_ext_handshake"),
        (bencode({"p": 70000}), "bad_ext_handshake"),
        (bencode({"p": b"6881"}), "bad_ext_handshake"),
        (bencode({"v": 5}), "bad_ext_handshake"),
        (bencode({"reqq": -1}), "bad_ext_handshake"),
        (bencode({"meshbed": b"x"}), "bad_ext_handshake"),
        (bencode({"meshbed": {"node": 1, "mesh": "m", "block": 16384}}), "bad_ext_handshake"),
        (bencode({"meshbed": {"node": "n", "mesh": "m", "block": b"1"}}), "bad_ext_handshake"),
        (bencode({"meshbed": {"node": "n", "mesh": "m", "block": 0}}), "bad_ext_handshake"),
        (bencode({"meshbed": {"node": "n", "mesh": "m"}}), "bad_ext_handshake"),
    ],
)
def test_handshake_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as ei:
        decode_ext_handshake(payload)
    assert ei.value.reason == reason


def test_pex_round_trip_v4_and_v6() -> None:
    added = [("127.0.0.1", 6881), ("10.0.0.2", 1), ("::1", 7000), ("fe80::1", 65535)]
    dropped = [("192.168.1.9", 51413), ("2001:db8::5", 80)]
    raw = encode_pex(added, dropped)
    d = bdecode(raw)
    assert len(d[b"added"]) == 12 and len(d[b"added.f"]) == 2 and len(d[b"dropped"]) == 6
    assert len(d[b"added6"]) == 36 and len(d[b"dropped6"]) == 18
    assert decode_pex(raw) == (added, dropped)
    assert decode_pex(encode_pex([], [])) == ([], [])


def test_pex_bounded_and_port_zero_skipped() -> None:
    many = [(f"10.0.{i // 250}.{i % 250 + 1}", 1000 + i) for i in range(500)]
    added, dropped = decode_pex(encode_pex(many, many[:3]))
    assert added == many[:PEX_MAX_PEERS] and dropped == many[:3]
    raw = bencode({"added": b"\x7f\0\0\x01\0\0" + b"\x7f\0\0\x02\x1a\xe1"})
    assert decode_pex(raw) == ([("127.0.0.2", 6881)], [])


def test_pex_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        encode_pex([("example.org", 80)], [])
    with pytest.raises(ValueError):
        encode_pex([("1.2.3.4", 0)], [])


@pytest.mark.parametrize(
    "payload",
    [b"", b"d5:added", b"le", bencode({"added": b"\x01\x02\x03\x04\x05"}),
     bencode({"added": 5}), bencode({"dropped": [b"x"]}), bencode({"added6": b"\0" * 17}),
     bencode({"dropped6": b"\0" * 19})],
)
def test_pex_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError) as ei:
        decode_pex(payload)
    assert ei.value.reason == "bad_pex"
