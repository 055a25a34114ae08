"""BitTorrent peer wire codec: BEP 3 messages, BEP 6 fast extension, BEP 10 extended id.

Pure and synchronous. Frames are ``<4-byte big-endian length><id><payload>``; a length
above ``max_frame`` is refused before anything is buffered. Every decoding failure is a
:class:`DecodeError` whose ``reason`` is a short label used as a metric label.

Note on ``Bitfield``: the name is both the BITFIELD message and the piece bitset. One class
serves both roles: ``Bitfield(n)`` is an empty bitset of ``n`` pieces, ``Bitfield(data=b)``
is the message as received (``.data`` is its payload), and ``encode(bitset)`` sends it. A
received bitfield is validated against the torrent with ``Bitfield.from_bytes(n, msg.data)``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Type, Union

__all__ = [
    "PROTOCOL", "HANDSHAKE_LEN", "RESERVED", "MAX_FRAME", "BLOCK", "MAX_BLOCK",
    "DecodeError", "Handshake", "encode_handshake", "decode_handshake",
    "CHOKE", "UNCHOKE", "INTERESTED", "NOT_INTERESTED", "HAVE", "BITFIELD", "REQUEST",
    "PIECE", "CANCEL", "PORT", "SUGGEST", "HAVE_ALL", "HAVE_NONE", "REJECT", "ALLOWED_FAST",
    "EXTENDED",
    "KeepAlive", "Choke", "Unchoke", "Interested", "NotInterested", "Have", "Bitfield",
    "Request", "Piece", "Cancel", "Port", "Suggest", "HaveAll", "HaveNone", "Reject",
    "AllowedFast", "Extended", "Message",
    "encode", "decode", "piece_header", "check_frame_length", "FrameDecoder",
]

PROTOCOL = b"BitTorrent protocol"
HANDSHAKE_LEN = 68
EXTENSION_BIT = 0x10  # reserved[5]: BEP 10 extension protocol
FAST_BIT = 0x04  # reserved[7]: BEP 6 fast extension
RESERVED = bytes([0, 0, 0, 0, 0, EXTENSION_BIT, 0, FAST_BIT])
BLOCK = 16384  # block size toward ordinary clients
MAX_BLOCK = 1 << 20  # largest block negotiated between meshbed peers
MAX_FRAME = 2 * 1024 * 1024 + 64

CHOKE = 0
UNCHOKE = 1
INTERESTED = 2
NOT_INTERESTED = 3
HAVE = 4
BITFIELD = 5
REQUEST = 6
PIECE = 7
CANCEL = 8
PORT = 9
SUGGEST = 13
HAVE_ALL = 14
HAVE_NONE = 15
REJECT = 16
ALLOWED_FAST = 17
EXTENDED = 20


class DecodeError(ValueError):
    """Malformed input from a peer; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# ---------------------------------------------------------------- handshake


@dataclass(frozen=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    @property
    def supports_extensions(self) -> bool:
        return bool(self.reserved[5] & EXTENSION_BIT)

    @property
    def supports_fast(self) -> bool:
        return bool(self.reserved[7] & FAST_BIT)


_HS_PREFIX = bytes([len(PROTOCOL)]) + PROTOCOL


def encode_handshake(info_hash: bytes, peer_id: bytes, reserved: bytes = RESERVED) -> bytes:
    if len(info_hash) != 20 or len(peer_id) != 20 or len(reserved) != 8:
        raise ValueError("handshake needs a 20-byte info_hash, 20-byte peer_id, 8 reserved bytes")
    return _HS_PREFIX + bytes(reserved) + bytes(info_hash) + bytes(peer_id)


def decode_handshake(data: bytes) -> Handshake:
    """Decode exactly 68 bytes."""
    if len(data) != HANDSHAKE_LEN:
        raise DecodeError("bad_handshake", f"length {len(data)}")
    raw = bytes(data)
    if raw[:20] != _HS_PREFIX:
        raise DecodeError("bad_handshake", "not the BitTorrent protocol")
    return Handshake(raw[20:28], raw[28:48], raw[48:68])


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class KeepAlive:
    pass


@dataclass(frozen=True)
class Choke:
    pass


@dataclass(frozen=True)
class Unchoke:
    pass


@dataclass(frozen=True)
class Interested:
    pass


@dataclass(frozen=True)
class NotInterested:
    pass


@dataclass(frozen=True)
class Have:
    index: int


@dataclass(frozen=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class Piece:
    index: int
    begin: int
    block: Union[bytes, memoryview]

    def __repr__(self) -> str:  # the block's bytes are noise in logs
        return f"Piece(index={self.index}, begin={self.begin}, len={len(self.block)})"


@dataclass(frozen=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class Port:
    port: int


@dataclass(frozen=True)
class Suggest:
    index: int


@dataclass(frozen=True)
class HaveAll:
    pass


@dataclass(frozen=True)
class HaveNone:
    pass


@dataclass(frozen=True)
class Reject:
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class AllowedFast:
    index: int


@dataclass(frozen=True)
class Extended:
    ext_id: int
    payload: bytes


# popcount per byte value; int.bit_count() is 3.10+.
_POP = bytes(bin(i).count("1") for i in range(256))


class Bitfield:
    """Piece bitset (bit 0 = high bit of byte 0, as on the wire) and the BITFIELD message.

    ``count()`` is O(1): a counter is kept on every set/clear.
    """

    __slots__ = ("_n", "_buf", "_count")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, n: Optional[int] = None, data: Optional[bytes] = None) -> None:
        if isinstance(n, (bytes, bytearray, memoryview)) and data is None:
            n, data = None, n  # Bitfield(b"...") as a message
        if data is not None:
            # Message form: the piece count is not known here, only the byte length.
            self._buf = bytearray(data)
            self._n = len(self._buf) * 8
            self._count = sum(_POP[b] for b in self._buf) if self._buf else 0
            return
        if n is None or n < 0:
            raise ValueError("Bitfield needs a piece count n >= 0 or data")
        self._n = n
        self._buf = bytearray((n + 7) >> 3)
        self._count = 0

    @classmethod
    def from_bytes(cls, n: int, data: Union[bytes, bytearray, memoryview]) -> Bitfield:
        """Validate a received bitfield for a torrent of ``n`` pieces."""
        if len(data) != (n + 7) >> 3:
            raise DecodeError("bad_bitfield", f"{len(data)} bytes for {n} pieces")
        spare = (-n) & 7
        if spare and data[-1] & ((1 << spare) - 1):
            raise DecodeError("bad_bitfield", "spare bits set")
        bf = cls(n)
        bf._buf[:] = data
        bf._count = bin(int.from_bytes(bf._buf, "big")).count("1") if n else 0
        return bf

    @classmethod
    def full(cls, n: int) -> Bitfield:
        bf = cls(n)
        if n:
            bf._buf[:] = b"\xff" * len(bf._buf)
            spare = (-n) & 7
            if spare:
                bf._buf[-1] = (0xFF << spare) & 0xFF
        bf._count = n
        return bf

    @property
    def data(self) -> bytes:
        """The wire payload (message view)."""
        return bytes(self._buf)

    def _check(self, i: int) -> None:
        if not 0 <= i < self._n:
            raise IndexError(f"piece index {i} out of range 0..{self._n - 1}")

    def set(self, i: int) -> bool:
        """Set bit ``i``; return True when it was not set before."""
        self._check(i)
        mask = 0x80 >> (i & 7)
        byte = self._buf[i >> 3]
        if byte & mask:
            return False
        self._buf[i >> 3] = byte | mask
        self._count += 1
        return True

    def clear(self, i: int) -> bool:
        """Clear bit ``i``; return True when it was set before."""
        self._check(i)
        mask = 0x80 >> (i & 7)
        byte = self._buf[i >> 3]
        if not byte & mask:
            return False
        self._buf[i >> 3] = byte & ~mask & 0xFF
        self._count -= 1
        return True

    def __contains__(self, i: object) -> bool:
        if not isinstance(i, int):
            return False
        self._check(i)
        return bool(self._buf[i >> 3] & (0x80 >> (i & 7)))

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self._n == other._n and self._buf == other._buf

    def __repr__(self) -> str:
        return f"Bitfield(n={self._n}, count={self._count})"

    def count(self) -> int:
        return self._count

    def all(self) -> bool:
        return self._count == self._n

    def any(self) -> bool:
        return self._count > 0

    def to_bytes(self) -> bytes:
        return bytes(self._buf)

    def _iter(self, want_set: bool) -> Iterator[int]:
        skip = 0 if want_set else 0xFF  # whole bytes with nothing to report
        n = self._n
        for bi, byte in enumerate(self._buf):
            if byte == skip:
                continue
            if not want_set:
                byte ^= 0xFF
            base = bi << 3
            for bit in range(8):
                if byte & (0x80 >> bit):
                    i = base + bit
                    if i >= n:
                        return
                    yield i

    def iter_set(self) -> Iterator[int]:
        return self._iter(True)

    def iter_missing(self) -> Iterator[int]:
        return self._iter(False)

    def copy(self) -> Bitfield:
        bf = Bitfield(self._n)
        bf._buf[:] = self._buf
        bf._count = self._count
        return bf


Message = Union[
    KeepAlive, Choke, Unchoke, Interested, NotInterested, Have, Bitfield, Request, Piece,
    Cancel, Port, Suggest, HaveAll, HaveNone, Reject, AllowedFast, Extended,
]

# ---------------------------------------------------------------- encoding

_LEN = struct.Struct(">I")
_ID = struct.Struct(">IB")  # length, id
_ID_I = struct.Struct(">IBI")  # length, id, index
_ID_III = struct.Struct(">IBIII")  # length, id, index, begin, length
_PIECE_HDR = struct.Struct(">IBII")  # length, id, index, begin
_ID_H = struct.Struct(">IBH")
_EXT_HDR = struct.Struct(">IBB")
_U32 = struct.Struct(">I")
_U32x3 = struct.Struct(">III")
_U16 = struct.Struct(">H")

_KEEPALIVE_FRAME = b"\x00\x00\x00\x00"


def _bare(msg_id: int) -> bytes:
    return _LEN.pack(1) + bytes([msg_id])


_BARE_FRAMES: Dict[type, bytes] = {
    KeepAlive: _KEEPALIVE_FRAME,
    Choke: _bare(CHOKE),
    Unchoke: _bare(UNCHOKE),
    Interested: _bare(INTERESTED),
    NotInterested: _bare(NOT_INTERESTED),
    HaveAll: _bare(HAVE_ALL),
    HaveNone: _bare(HAVE_NONE),
}


def piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13-byte frame prefix of a Piece whose block is ``length`` bytes long."""
    return _PIECE_HDR.pack(9 + length, PIECE, index, begin)


def _enc_piece(m: Piece) -> bytes:
    return _PIECE_HDR.pack(9 + len(m.block), PIECE, m.index, m.begin) + m.block


def _enc_bitfield(m: Bitfield) -> bytes:
    buf = m._buf
    return _ID.pack(1 + len(buf), BITFIELD) + bytes(buf)


def _enc_extended(m: Extended) -> bytes:
    return _EXT_HDR.pack(2 + len(m.payload), EXTENDED, m.ext_id) + bytes(m.payload)


_ENCODERS: Dict[type, Callable[..., bytes]] = {
    Have: lambda m: _ID_I.pack(5, HAVE, m.index),
    Suggest: lambda m: _ID_I.pack(5, SUGGEST, m.index),
    AllowedFast: lambda m: _ID_I.pack(5, ALLOWED_FAST, m.index),
    Request: lambda m: _ID_III.pack(13, REQUEST, m.index, m.begin, m.length),
    Cancel: lambda m: _ID_III.pack(13, CANCEL, m.index, m.begin, m.length),
    Reject: lambda m: _ID_III.pack(13, REJECT, m.index, m.begin, m.length),
    Port: lambda m: _ID_H.pack(3, PORT, m.port),
    Piece: _enc_piece,
    Bitfield: _enc_bitfield,
    Extended: _enc_extended,
}


def encode(msg: Message) -> bytes:
    """Encode one message as a full frame (4-byte big-endian length prefix included)."""
    cls = type(msg)
    frame = _BARE_FRAMES.get(cls)
    if frame is not None:
        return frame
    try:
        enc = _ENCODERS[cls]
    except KeyError:
        raise TypeError(f"not a wire message: {cls.__name__}") from None
    try:
        return enc(msg)
    except struct.error as e:  # field out of range for its wire width
        raise ValueError(f"cannot encode {msg!r}: {e}") from None


_FIXED_FRAME_LEN: Dict[type, int] = {
    KeepAlive: 4, Choke: 5, Unchoke: 5, Interested: 5, NotInterested: 5, HaveAll: 5,
    HaveNone: 5, Have: 9, Suggest: 9, AllowedFast: 9, Request: 17, Cancel: 17, Reject: 17,
    Port: 7,
}


def frame_len(msg: Message) -> int:
    """Bytes ``encode(msg)`` would produce, without encoding (the simulator charges links)."""
    n = _FIXED_FRAME_LEN.get(type(msg))
    if n is not None:
        return n
    if isinstance(msg, Piece):
        return 13 + len(msg.block)
    if isinstance(msg, Bitfield):
        return 5 + len(msg._buf)
    if isinstance(msg, Extended):
        return 6 + len(msg.payload)
    raise TypeError(f"not a wire message: {type(msg).__name__}")


# ---------------------------------------------------------------- decoding

_KEEPALIVE = KeepAlive()
_SINGLETONS: Dict[int, Message] = {
    CHOKE: Choke(),
    UNCHOKE: Unchoke(),
    INTERESTED: Interested(),
    NOT_INTERESTED: NotInterested(),
    HAVE_ALL: HaveAll(),
    HAVE_NONE: HaveNone(),
}
_INDEX_MSGS: Dict[int, Type[Union[Have, Suggest, AllowedFast]]] = {
    HAVE: Have, SUGGEST: Suggest, ALLOWED_FAST: AllowedFast,
}
_TRIPLE_MSGS: Dict[int, Type[Union[Request, Cancel, Reject]]] = {
    REQUEST: Request, CANCEL: Cancel, REJECT: Reject,
}


def check_frame_length(n: int, max_frame: int = MAX_FRAME) -> None:
    if n > max_frame:
        raise DecodeError("frame_too_large", f"{n} > {max_frame}")


def decode(body: Union[bytes, bytearray, memoryview]) -> Message:
    """Decode a frame body (the bytes after the length prefix; empty = keep-alive).

    A Piece's block is a zero-copy memoryview slice of ``body`` (bytes or memoryview input),
    so ``body`` must not be mutated while the block is in use.
    """
    size = len(body)
    if size == 0:
        return _KEEPALIVE
    msg_id = body[0]
    single = _SINGLETONS.get(msg_id)
    if single is not None:
        if size != 1:
            raise DecodeError("bad_length", f"id {msg_id} with {size - 1} payload bytes")
        return single
    if msg_id == PIECE:
        if size < 9:
            raise DecodeError("bad_length", "piece shorter than its header")
        index, begin = struct.unpack_from(">II", body, 1)
        view = body if isinstance(body, memoryview) else memoryview(body)
        return Piece(index, begin, view[9:])
    if msg_id in _TRIPLE_MSGS:
        if size != 13:
            raise DecodeError("bad_length", f"id {msg_id} with {size - 1} payload bytes")
        return _TRIPLE_MSGS[msg_id](*_U32x3.unpack_from(body, 1))
    if msg_id in _INDEX_MSGS:
        if size != 5:
            raise DecodeError("bad_length", f"id {msg_id} with {size - 1} payload bytes")
        return _INDEX_MSGS[msg_id](_U32.unpack_from(body, 1)[0])
    if msg_id == BITFIELD:
        return Bitfield(data=bytes(body[1:]))
    if msg_id == EXTENDED:
        if size < 2:
            raise DecodeError("bad_length", "extended message without id")
        return Extended(body[1], bytes(body[2:]))
    if msg_id == PORT:
        if size != 3:
            raise DecodeError("bad_length", f"port with {size - 1} payload bytes")
        return Port(_U16.unpack_from(body, 1)[0])
    raise DecodeError("unknown_id", str(msg_id))


class FrameDecoder:
    """Incremental frame splitter + decoder.

    Holds at most one incomplete frame (length-checked against ``max_frame`` as soon as its
    4-byte prefix arrives), so memory stays bounded whatever the peer sends. The chunks of
    an incomplete frame are kept as they came and joined once when it is whole: a 1 MiB
    block read in pieces is copied once, not once per read.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._parts: List[bytes] = []
        self._have = 0  # bytes in _parts
        self._need = 0  # bytes the incomplete frame needs in all (0: length unknown yet)

    @property
    def buffered(self) -> int:
        return self._have

    @property
    def missing(self) -> int:
        """Bytes the incomplete frame still lacks (0: none, or its length not known yet)."""
        return self._need - self._have if self._need else 0

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> List[Message]:
        msgs: List[Message] = []
        src = data if isinstance(data, bytes) else bytes(data)
        if self._parts:
            self._parts.append(src)
            self._have += len(src)
            if not self._need and self._have >= 4:
                head = b"".join(self._parts)
                self._parts = [head]
                (length,) = _LEN.unpack_from(head, 0)
                check_frame_length(length, self.max_frame)
                self._need = 4 + length
            if not self._need or self._have < self._need:
                return msgs
            src = b"".join(self._parts)
            self._parts, self._have, self._need = [], 0, 0
        # Decode complete frames straight out of ``src`` (zero-copy bodies: bytes never change).
        pos = self._split(src, memoryview(src), msgs)
        if pos < len(src):
            rest = src[pos:]
            self._parts, self._have = [rest], len(rest)
            if len(rest) >= 4:
                self._need = 4 + _LEN.unpack_from(rest, 0)[0]
        return msgs

    def _split(self, src: bytes, view: memoryview, out: List[Message]) -> int:
        pos = 0
        end = len(src)
        unpack = _LEN.unpack_from
        max_frame = self.max_frame
        while end - pos >= 4:
            (length,) = unpack(src, pos)
            if length > max_frame:
                raise DecodeError("frame_too_large", f"{length} > {max_frame}")
            stop = pos + 4 + length
            if stop > end:
                break
            out.append(decode(view[pos + 4:stop]))
            pos = stop
        return pos
