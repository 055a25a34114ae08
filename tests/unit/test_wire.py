"""Wire codec: handshake, every message, FrameDecoder, Bitfield, every decode error reason."""

from __future__ import annotations

import struct

import pytest

from peer import wire
from peer.wire import (
    BLOCK,
    HANDSHAKE_LEN,
    MAX_FRAME,
    RESERVED,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    DecodeError,
    Extended,
    FrameDecoder,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    check_frame_length,
    decode,
    decode_handshake,
    encode,
    encode_handshake,
    piece_header,
)

pytestmark = pytest.mark.timeout(30)

IH = bytes(range(20))
PID = b"-MB0100-abcdefghijkl"

ALL_MESSAGES: list[wire.Message] = [
    KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested(), Have(7),
    Bitfield(data=b"\xa0\x01"), Request(1, 16384, 16384), Piece(3, 32768, b"x" * 100),
    Cancel(1, 2, 3), Port(6881), Suggest(4), HaveAll(), HaveNone(), Reject(5, 0, 16384),
    AllowedFast(9), Extended(1, b"d5:added0:e"),
]


def test_constants() -> None:
    assert wire.PROTOCOL == b"BitTorrent protocol"
    assert RESERVED[5] & 0x10 and RESERVED[7] & 0x04 and len(RESERVED) == 8
    assert MAX_FRAME == 2 * 1024 * 1024 + 64 and BLOCK == 16384 and wire.MAX_BLOCK == 1 << 20
    ids = [wire.CHOKE, wire.UNCHOKE, wire.INTERESTED, wire.NOT_INTERESTED, wire.HAVE,
           wire.BITFIELD, wire.REQUEST, wire.PIECE, wire.CANCEL, wire.PORT, wire.SUGGEST,
           wire.HAVE_ALL, wire.HAVE_NONE, wire.REJECT, wire.ALLOWED_FAST, wire.EXTENDED]
    assert ids == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20]


def test_handshake_round_trip() -> None:
    raw = encode_handshake(IH, PID)
    assert len(raw) == HANDSHAKE_LEN and raw[0] == 19
    hs = decode_handshake(raw)
    assert (hs.info_hash, hs.peer_id, hs.reserved) == (IH, PID, RESERVED)
    assert hs.supports_extensions and hs.supports_fast
    plain = decode_handshake(encode_handshake(IH, PID, reserved=bytes(8)))
    assert not plain.supports_extensions and not plain.supports_fast


def test_handshake_errors() -> None:
    raw = encode_handshake(IH, PID)
    for bad in (raw[:-1], raw + b"x", b"\x13" + b"BitTorrent protocoL" + raw[20:],
                b"\x12" + raw[1:], b""):
        with pytest.raises(DecodeError) as ei:
            decode_handshake(bad)
        assert ei.value.reason == "bad_handshake"
    with pytest.raises(ValueError):
        encode_handshake(IH[:19], PID)


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_message_round_trip(msg: wire.Message) -> None:
    frame = encode(msg)
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert decode(frame[4:]) == msg
    assert decode(memoryview(frame)[4:]) == msg


def test_known_encodings() -> None:
    assert encode(KeepAlive()) == b"\0\0\0\0"
    assert encode(Interested()) == b"\0\0\0\x01\x02"
    assert encode(Have(1)) == b"\0\0\0\x05\x04\0\0\0\x01"
    assert encode(Request(1, 2, 3)) == b"\0\0\0\x0d\x06" + struct.pack(">III", 1, 2, 3)
    assert encode(Port(6881)) == b"\0\0\0\x03\x09\x1a\xe1"
    assert encode(Extended(0, b"de")) == b"\0\0\0\x04\x14\x00de"


def test_piece_header_and_zero_copy_block() -> None:
    block = bytes(range(256)) * 64
    frame = encode(Piece(2, 16384, block))
    assert frame[:13] == piece_header(2, 16384, len(block)) and len(piece_header(0, 0, 1)) == 13
    body = frame[4:]
    msg = decode(body)
    assert isinstance(msg, Piece) and isinstance(msg.block, memoryview)
    assert msg.block.obj is body  # a view on the body, not a copy
    assert bytes(msg.block) == block


def test_encode_errors() -> None:
    with pytest.raises(TypeError):
        encode("choke")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode(Have(-1))
    with pytest.raises(ValueError):
        encode(Port(70000))


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\x00x", "bad_length"), (b"\x01\x00", "bad_length"), (b"\x0e\x00", "bad_length"),
        (b"\x04\0\0\0", "bad_length"), (b"\x04\0\0\0\0\0", "bad_length"),
        (b"\x06" + b"\0" * 11, "bad_length"), (b"\x08" + b"\0" * 13, "bad_length"),
        (b"\x10" + b"\0" * 4, "bad_length"), (b"\x11\0", "bad_length"),
        (b"\x07\0\0\0\0\0\0\0", "bad_length"), (b"\x09\0", "bad_length"),
        (b"\x14", "bad_length"), (b"\x0a", "unknown_id"), (b"\xff\0\0", "unknown_id"),
        (b"\x12", "unknown_id"),
    ],
)
def test_decode_errors(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as ei:
        decode(body)
    assert ei.value.reason == reason


def test_check_frame_length() -> None:
    check_frame_length(MAX_FRAME)
    with pytest.raises(DecodeError) as ei:
        check_frame_length(MAX_FRAME + 1)
    assert ei.value.reason == "frame_too_large"
    with pytest.raises(DecodeError):
        check_frame_length(16384 + 14, max_frame=16384 + 13)


def test_frame_decoder_any_split() -> None:
    stream = b"".join(encode(m) for m in ALL_MESSAGES)
    for step in (1, 3, 7, 64, len(stream)):
        fd = FrameDecoder()
        out: list = []
        for k in range(0, len(stream), step):
            out += fd.feed(stream[k:k + step])
        assert out == ALL_MESSAGES, step
        assert fd.buffered == 0


def test_frame_decoder_says_how_much_of_a_frame_is_missing() -> None:
    frame = encode(Piece(0, 0, b"\x01" * 16384))
    fd = FrameDecoder()
    assert fd.missing == 0
    fd.feed(frame[:2])  # its length not known yet
    assert fd.missing == 0
    fd.feed(frame[2:1000])
    assert fd.missing == len(frame) - 1000
    msgs = fd.feed(frame[1000:] + encode(Have(3))[:5])
    assert len(msgs) == 1 and fd.missing == 4  # the next frame's length is known
    assert fd.feed(encode(Have(3))[5:]) == [Have(3)] and fd.missing == 0


def test_frame_decoder_bodies_survive_buffer_reuse() -> None:
    block = b"\x5a" * 50000
    frame = encode(Piece(0, 0, block))
    fd = FrameDecoder()
    msgs = fd.feed(bytearray(frame[:1000]))
    msgs += fd.feed(memoryview(frame)[1000:] )
    msgs += fd.feed(encode(Piece(1, 0, b"\x00" * 50000)))  # must not clobber the first block
    assert [m.index for m in msgs] == [0, 1]  # type: ignore[union-attr]
    assert bytes(msgs[0].block) == block  # type: ignore[union-attr]


def test_frame_decoder_rejects_oversized_frame_before_buffering() -> None:
    fd = FrameDecoder(max_frame=1000)
    with pytest.raises(DecodeError) as ei:
        fd.feed(struct.pack(">I", 1001))
    assert ei.value.reason == "frame_too_large"
    fd = FrameDecoder(max_frame=1000)
    fd.feed(struct.pack(">I", 1000) + b"\x07" + b"\0" * 500)
    assert fd.buffered == 505  # bounded: one incomplete frame
    with pytest.raises(DecodeError) as ei:
        FrameDecoder().feed(b"\0\0\0\x01\x63")
    assert ei.value.reason == "unknown_id"


def test_bitfield_basics() -> None:
    bf = Bitfield(10)
    assert len(bf) == 10 and bf.count() == 0 and not bf.any() and not bf.all()
    assert bf.set(0) and bf.set(9) and not bf.set(9)
    assert 0 in bf and 9 in bf and 5 not in bf and bf.count() == 2
    assert bf.to_bytes() == b"\x80\x40"
    assert list(bf.iter_set()) == [0, 9]
    assert list(bf.iter_missing()) == [1, 2, 3, 4, 5, 6, 7, 8]
    cp = bf.copy()
    assert bf.clear(0) and not bf.clear(0) and bf.count() == 1
    assert 0 in cp and cp.count() == 2 and cp != bf
    for i in (-1, 10):
        with pytest.raises(IndexError):
            bf.set(i)
        with pytest.raises(IndexError):
            _ = i in bf
        with pytest.raises(IndexError):
            bf.clear(i)


def test_bitfield_full_and_from_bytes() -> None:
    for n in (0, 1, 7, 8, 9, 16, 1001):
        full = Bitfield.full(n)
        assert full.count() == n and full.all() and list(full.iter_missing()) == []
        assert list(full.iter_set()) == list(range(n))
        again = Bitfield.from_bytes(n, full.to_bytes())
        assert again == full and again.count() == n
    assert Bitfield(0).all() and not Bitfield(0).any()
    bf = Bitfield.from_bytes(12, b"\x81\x30")
    assert list(bf.iter_set()) == [0, 7, 10, 11] and bf.count() == 4


@pytest.mark.parametrize("n, data", [(12, b"\x81"), (12, b"\x81\x30\x00"), (12, b"\x00\x01"),
                                     (9, b"\xff\xc0"), (0, b"\x00")])
def test_bitfield_from_bytes_errors(n: int, data: bytes) -> None:
    with pytest.raises(DecodeError) as ei:
        Bitfield.from_bytes(n, data)
    assert ei.value.reason == "bad_bitfield"


def test_bitfield_is_also_the_message() -> None:
    bf = Bitfield(20)
    bf.set(3)
    frame = encode(bf)  # a store's bitset can be sent as is
    msg = decode(frame[4:])
    assert isinstance(msg, Bitfield) and msg.data == bf.to_bytes()
    assert Bitfield.from_bytes(20, msg.data) == bf
    assert encode(Bitfield(data=bf.to_bytes())) == frame
    with pytest.raises(ValueError):
        Bitfield()
