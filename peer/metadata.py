"""BEP 9 metadata exchange (``ut_metadata``) and magnet links, sans-I/O.

``ut_metadata`` payloads here exclude the EXTENDED header (``wire.Extended(ext_id, payload)``
wraps them), like peer/extensions.py. ``MetadataAssembler`` collects the info dict of a
magnet download piece by piece and checks it against the infohash; ``MetadataServer``
answers requests for our own info dict. ``parse_magnet`` reads ``magnet:`` URIs (BEP 9,
BEP 53 ``x.pe``, BEP 52 ``btmh``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple, Union

from peer.bencode import BencodeError, bdecode_prefix, bencode

__all__ = [
    "MetadataError", "METADATA_PIECE", "MAX_METADATA_SIZE", "MetaRequest", "MetaData",
    "MetaReject", "encode_metadata_msg", "decode_metadata_msg", "MetadataAssembler",
    "MetadataServer", "Magnet", "parse_magnet", "make_magnet", "MAX_MAGNET_LEN",
]

METADATA_PIECE = 16 * 1024
MAX_METADATA_SIZE = 16 * 1024 * 1024  # libtorrent's default cap is 30 MiB; ours is tighter
MAX_MAGNET_LEN = 16 * 1024
MAX_MAGNET_ITEMS = 64  # trackers / peers kept from one magnet
REQUEST, DATA, REJECT = 0, 1, 2

Addr = Tuple[str, int]


class MetadataError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class MetaRequest:
    piece: int


@dataclass(frozen=True)
class MetaData:
    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True)
class MetaReject:
    piece: int


MetaMsg = Union[MetaRequest, MetaData, MetaReject]


def num_pieces(size: int) -> int:
    return -(-size // METADATA_PIECE)


def encode_metadata_msg(msg: MetaMsg) -> bytes:
    if isinstance(msg, MetaRequest):
        return bencode({"msg_type": REQUEST, "piece": msg.piece})
    if isinstance(msg, MetaReject):
        return bencode({"msg_type": REJECT, "piece": msg.piece})
    head = bencode({"msg_type": DATA, "piece": msg.piece, "total_size": msg.total_size})
    return head + msg.data


def _int(d: Dict[bytes, object], key: bytes, hi: int) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise MetadataError("bad_ut_metadata", f"{key.decode()} must be an integer in 0..{hi}")
    return v


def decode_metadata_msg(payload: bytes) -> MetaMsg:
    try:
        d, end = bdecode_prefix(payload, max_depth=2)
    except BencodeError as e:
        raise MetadataError("bad_ut_metadata", str(e)) from None
    if not isinstance(d, dict):
        raise MetadataError("bad_ut_metadata", "not a dict")
    kind = _int(d, b"msg_type", 255)
    piece = _int(d, b"piece", num_pieces(MAX_METADATA_SIZE))
    if kind == REQUEST:
        return MetaRequest(piece)
    if kind == REJECT:
        return MetaReject(piece)
    if kind == DATA:
        data = bytes(payload[end:])
        if len(data) > METADATA_PIECE:
            raise MetadataError("bad_ut_metadata", f"piece of {len(data)} bytes")
        return MetaData(piece, _int(d, b"total_size", MAX_METADATA_SIZE), data)
    raise MetadataError("bad_ut_metadata", f"unknown msg_type {kind}")


class MetadataAssembler:
    """The info dict of a magnet download, checked against ``info_hash`` (SHA-1, or
    SHA-256 for a v2 magnet). One per torrent; peers share it."""

    def __init__(self, info_hash: bytes, size: int, max_size: int = MAX_METADATA_SIZE) -> None:
        if len(info_hash) not in (20, 32):
            raise ValueError("info_hash must be 20 (v1) or 32 (v2) bytes")
        if not 0 < size <= max_size:
            raise MetadataError("bad_metadata_size", f"{size} not in 1..{max_size}")
        self.info_hash = info_hash
        self.size = size
        self._pieces: Dict[int, bytes] = {}
        self._asked: Set[int] = set()
        self.info_bytes: Optional[bytes] = None
        self.failures = 0

    @property
    def num_pieces(self) -> int:
        return num_pieces(self.size)

    @property
    def done(self) -> bool:
        return self.info_bytes is not None

    def next_request(self) -> Optional[int]:
        """A piece nobody was asked for yet; None when all are asked or held."""
        for i in range(self.num_pieces):
            if i not in self._pieces and i not in self._asked:
                self._asked.add(i)
                return i
        return None

    def rejected(self, piece: int) -> None:
        """The peer said no (or went away): the piece may be asked elsewhere."""
        self._asked.discard(piece)

    def receive(self, msg: MetaData) -> bool:
        """Store a piece; True when the info dict is complete and verified. Raises
        MetadataError (and starts over) if the whole does not hash to the infohash."""
        if self.done:
            return True
        if msg.total_size != self.size:
            raise MetadataError("bad_metadata_size", f"{msg.total_size} != {self.size}")
        if not 0 <= msg.piece < self.num_pieces:
            raise MetadataError("bad_ut_metadata", f"piece {msg.piece} out of range")
        want = min(METADATA_PIECE, self.size - msg.piece * METADATA_PIECE)
        if len(msg.data) != want:
            raise MetadataError("bad_ut_metadata", f"piece {msg.piece}: {len(msg.data)} bytes")
        self._pieces[msg.piece] = msg.data
        self._asked.discard(msg.piece)
        if len(self._pieces) < self.num_pieces:
            return False
        info = b"".join(self._pieces[i] for i in range(self.num_pieces))
        algo = hashlib.sha1 if len(self.info_hash) == 20 else hashlib.sha256
        if algo(info).digest() != self.info_hash:
            self._pieces.clear()
            self.failures += 1
            raise MetadataError("metadata_hash_mismatch", "info dict does not match the hash")
        self.info_bytes = info
        return True


class MetadataServer:
    """Answers ut_metadata requests for our own (already verified) info dict."""

    def __init__(self, info_bytes: bytes) -> None:
        self.info_bytes = bytes(info_bytes)

    @property
    def size(self) -> int:
        return len(self.info_bytes)

    def answer(self, msg: MetaMsg) -> Optional[MetaMsg]:
        """Data or Reject for a request; None for anything else (ignored)."""
        if not isinstance(msg, MetaRequest):
            return None
        if msg.piece >= num_pieces(self.size):
            return MetaReject(msg.piece)
        off = msg.piece * METADATA_PIECE
        return MetaData(msg.piece, self.size, self.info_bytes[off:off + METADATA_PIECE])


# ---------------------------------------------------------------- magnet links


@dataclass(frozen=True)
class Magnet:
    info_hash: Optional[bytes] = None  # v1 (btih), 20 bytes
    info_hash_v2: Optional[bytes] = None  # v2 (btmh sha2-256), 32 bytes
    name: Optional[str] = None
    trackers: List[str] = field(default_factory=list)
    peers: List[Addr] = field(default_factory=list)


def _btih(value: str) -> bytes:
    if len(value) == 40:
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise MetadataError("bad_magnet", "btih is not hex") from None
    if len(value) == 32:
        try:
            return base64.b32decode(value.upper())
        except (ValueError, TypeError):
            raise MetadataError("bad_magnet", "btih is not base32") from None
    raise MetadataError("bad_magnet", f"btih of {len(value)} characters")


def _btmh(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MetadataError("bad_magnet", "btmh is not hex") from None
    if len(raw) != 34 or raw[:2] != b"\x12\x20":  # multihash: sha2-256, 32 bytes
        raise MetadataError("bad_magnet", "btmh must be a sha2-256 multihash")
    return raw[2:]


def _peer(value: str) -> Addr:
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise MetadataError("bad_magnet", f"x.pe {value[:64]!r} is not host:port")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if len(host) > 253 or not all(c.isalnum() or c in "-." for c in host):
            raise MetadataError("bad_magnet", f"x.pe host {host[:64]!r}") from None
    return host, int(port)


def parse_magnet(uri: str) -> Magnet:
    """Parse a magnet URI; at least one of btih/btmh is required."""
    if len(uri) > MAX_MAGNET_LEN:
        raise MetadataError("bad_magnet", f"longer than {MAX_MAGNET_LEN} characters")
    if not uri[:8].lower() == "magnet:?":
        raise MetadataError("bad_magnet", "does not start with magnet:?")
    try:
        params = urllib.parse.parse_qsl(uri[8:], keep_blank_values=False, strict_parsing=False,
                                        max_num_fields=4 * MAX_MAGNET_ITEMS)
    except ValueError as e:
        raise MetadataError("bad_magnet", str(e)) from None
    v1: Optional[bytes] = None
    v2: Optional[bytes] = None
    name: Optional[str] = None
    trackers: List[str] = []
    peers: List[Addr] = []
    for key, value in params:
        key = key.lower()
        if key == "xt" or (key.startswith("xt.") and key[3:].isdigit()):
            low = value.lower()
            if low.startswith("urn:btih:"):
                v1 = _btih(value[9:])
            elif low.startswith("urn:btmh:"):
                v2 = _btmh(value[9:])
        elif key == "dn":
            name = value[:255]
        elif key == "tr" or (key.startswith("tr.") and key[3:].isdigit()):
            if len(trackers) < MAX_MAGNET_ITEMS and value.split("://", 1)[0].lower() in (
                    "http", "https", "udp"):
                trackers.append(value)
        elif key == "x.pe" and len(peers) < MAX_MAGNET_ITEMS:
            peers.append(_peer(value))
    if v1 is None and v2 is None:
        raise MetadataError("bad_magnet", "no urn:btih or urn:btmh exact topic")
    return Magnet(v1, v2, name, trackers, peers)


def make_magnet(info_hash: bytes, *, name: Optional[str] = None,
                info_hash_v2: Optional[bytes] = None, trackers: Tuple[str, ...] = (),
                peers: Tuple[Addr, ...] = ()) -> str:
    parts = [("xt", "urn:btih:" + info_hash.hex())]
    if info_hash_v2 is not None:
        parts.append(("xt", "urn:btmh:1220" + info_hash_v2.hex()))
    if name:
        parts.append(("dn", name))
    parts += [("tr", t) for t in trackers]
    parts += [("x.pe", f"[{h}]:{p}" if ":" in h else f"{h}:{p}") for h, p in peers]
    return "magnet:?" + "&".join(f"{k}={urllib.parse.quote(v, safe=':/[]')}" for k, v in parts)
