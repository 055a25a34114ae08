"""BEP 10 extended handshake and BEP 11 peer exchange payloads (pure codecs); the handshake
also carries BEP 9's ``ut_metadata`` id and ``metadata_size`` (messages: peer/metadata.py).

Payloads here exclude the EXTENDED message id and the extended id byte: the wire layer
wraps them in ``wire.Extended(ext_id, payload)``.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from peer.bencode import BencodeError, bdecode, bencode
from peer.wire import DecodeError

__all__ = [
    "UT_PEX", "MESHBED", "UT_PEX_ID", "MESHBED_ID", "HANDSHAKE_ID", "PEX_MAX_PEERS",
    "UT_METADATA", "UT_METADATA_ID", "MAX_METADATA_SIZE",
    "ExtHandshake", "encode_ext_handshake", "decode_ext_handshake",
    "encode_pex", "decode_pex", "local_handshake",
]

HANDSHAKE_ID = 0  # extended id 0 is always the extended handshake
UT_PEX = "ut_pex"
MESHBED = "meshbed_v1"
UT_METADATA = "ut_metadata"
UT_PEX_ID = 1
MESHBED_ID = 2
UT_METADATA_ID = 3
MAX_METADATA_SIZE = 16 * 1024 * 1024  # = peer.metadata.MAX_METADATA_SIZE
PEX_MAX_PEERS = 200  # per list in one message; more is truncated (BEP 11 suggests <= 50)

Addr = Tuple[str, int]


@dataclass(frozen=True)
class ExtHandshake:
    """The extended handshake dict. ``m`` maps extension names to the ids the sender wants
    to *receive* them on (0 = disabled). ``meshbed`` = {"node": str, "mesh": str, "block": int}
    is present only between meshbed peers, with "proof" (32 bytes, peer/core/identity.py)
    when the sender holds the mesh key."""

    m: Dict[str, int] = field(default_factory=dict)
    port: Optional[int] = None
    client: Optional[str] = None
    reqq: Optional[int] = None
    meshbed: Optional[Dict[str, Any]] = None
    metadata_size: Optional[int] = None  # BEP 9: bytes of the info dict, if the sender has it


def local_handshake(
    *, port: Optional[int], client: str, reqq: int, node: str, mesh: str, block: int,
    metadata_size: Optional[int] = None,
) -> ExtHandshake:
    """The handshake a meshbed peer sends: both extensions on our fixed local ids, plus
    ut_metadata when ``metadata_size`` is given (i.e. the agent serves BEP 9)."""
    m = {UT_PEX: UT_PEX_ID, MESHBED: MESHBED_ID}
    if metadata_size is not None:
        m[UT_METADATA] = UT_METADATA_ID
    return ExtHandshake(
        m=m,
        port=port,
        client=client,
        reqq=reqq,
        meshbed={"node": node, "mesh": mesh, "block": block},
        metadata_size=metadata_size,
    )


def encode_ext_handshake(h: ExtHandshake) -> bytes:
    d: Dict[str, Any] = {"m": dict(h.m)}
    if h.port is not None:
        d["p"] = h.port
    if h.client is not None:
        d["v"] = h.client
    if h.reqq is not None:
        d["reqq"] = h.reqq
    if h.metadata_size is not None:
        d["metadata_size"] = h.metadata_size
    if h.meshbed is not None:
        d["meshbed"] = {
            "node": h.meshbed["node"],
            "mesh": h.meshbed["mesh"],
            "block": h.meshbed["block"],
        }
        if isinstance(h.meshbed.get("proof"), bytes):
            d["meshbed"]["proof"] = h.meshbed["proof"]
    return bencode(d)


def _bad(detail: str) -> DecodeError:
    return DecodeError("bad_ext_handshake", detail)


def _opt_int(d: Dict[bytes, Any], key: bytes, lo: int, hi: int) -> Optional[int]:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or not lo <= v <= hi:
        raise _bad(f"{key.decode()} must be an integer in {lo}..{hi}")
    return v


def _text(v: Any, what: str) -> str:
    if not isinstance(v, bytes):
        raise _bad(f"{what} must be a string")
    return v.decode("utf-8", errors="replace")


def decode_ext_handshake(payload: bytes) -> ExtHandshake:
    try:
        d = bdecode(payload, max_depth=8)
    except BencodeError as e:
        raise DecodeError("bad_bencode", str(e)) from None
    if not isinstance(d, dict):
        raise _bad("not a dict")
    raw_m = d.get(b"m", {})
    if not isinstance(raw_m, dict):
        raise _bad("m must be a dict")
    m: Dict[str, int] = {}
    for k, v in raw_m.items():
        if not isinstance(v, int) or not 0 <= v <= 255:
            raise _bad(f"m[{k[:32]!r}] must be an integer in 0..255")
        m[sys.intern(k.decode("utf-8", errors="replace"))] = v  # one str per name, not per peer
    port = _opt_int(d, b"p", 0, 65535) or None  # p=0 means "not listening"
    reqq = _opt_int(d, b"reqq", 0, 1 << 31)
    metadata_size = _opt_int(d, b"metadata_size", 0, 1 << 31)
    if metadata_size is not None and not 0 < metadata_size <= MAX_METADATA_SIZE:
        metadata_size = None  # too big to fetch (or 0): as if the peer had none
    client = _text(d[b"v"], "v") if b"v" in d else None
    meshbed: Optional[Dict[str, Any]] = None
    if b"meshbed" in d:
        mb = d[b"meshbed"]
        if not isinstance(mb, dict):
            raise _bad("meshbed must be a dict")
        for key in (b"node", b"mesh", b"block"):
            if key not in mb:
                raise _bad(f"meshbed.{key.decode()} missing")
        block = mb[b"block"]
        if not isinstance(block, int) or not 0 < block <= 1 << 30:
            raise _bad("meshbed.block must be a positive integer")
        meshbed = {
            "node": _text(mb[b"node"], "meshbed.node"),
            "mesh": _text(mb[b"mesh"], "meshbed.mesh"),
            "block": block,
        }
        proof = mb.get(b"proof")
        if isinstance(proof, bytes) and len(proof) == 32:  # anything else: no proof
            meshbed["proof"] = proof
    return ExtHandshake(m=m, port=port, client=client, reqq=reqq, meshbed=meshbed,
                        metadata_size=metadata_size)


# ---------------------------------------------------------------- ut_pex

_V4 = struct.Struct(">4sH")
_V6 = struct.Struct(">16sH")


def _compact(peers: List[Addr]) -> Tuple[bytes, bytes]:
    v4: List[bytes] = []
    v6: List[bytes] = []
    for host, port in peers:
        if not 0 < port < 65536:
            raise ValueError(f"bad port {port} for {host}")
        try:  # the common case, in C (ipaddress costs ~10 us per address: PEX in big sims)
            v4.append(_V4.pack(socket.inet_pton(socket.AF_INET, host), port))
            continue
        except OSError:
            pass
        ip = ipaddress.ip_address(host)  # ValueError for host names: PEX carries addresses
        if ip.version == 4:
            v4.append(_V4.pack(ip.packed, port))
        else:
            v6.append(_V6.pack(ip.packed, port))
    return b"".join(v4), b"".join(v6)


def encode_pex(added: List[Addr], dropped: List[Addr]) -> bytes:
    """ut_pex payload: IPv4 compact lists in added/added.f/dropped, IPv6 in added6/dropped6."""
    a4, a6 = _compact(added)
    d4, d6 = _compact(dropped)
    d: Dict[str, bytes] = {"added": a4, "added.f": bytes(len(a4) // 6), "dropped": d4}
    if a6:
        d["added6"] = a6
        d["added6.f"] = bytes(len(a6) // 18)
    if d6:
        d["dropped6"] = d6
    return bencode(d)


def _uncompact(raw: Any, size: int, family: int, key: str) -> List[Addr]:
    if raw is None:
        return []
    if not isinstance(raw, bytes) or len(raw) % size:
        raise DecodeError("bad_pex", f"{key} is not a compact peer list")
    out: List[Addr] = []
    alen = size - 2
    for off in range(0, min(len(raw), size * PEX_MAX_PEERS), size):
        port = (raw[off + alen] << 8) | raw[off + alen + 1]
        if port == 0:
            continue
        out.append((socket.inet_ntop(family, raw[off:off + alen]), port))
    return out


def decode_pex(payload: bytes) -> Tuple[List[Addr], List[Addr]]:
    """Return (added, dropped), IPv4 then IPv6; each list truncated to PEX_MAX_PEERS."""
    try:
        d = bdecode(payload, max_depth=4)
    except BencodeError as e:
        raise DecodeError("bad_pex", str(e)) from None
    if not isinstance(d, dict):
        raise DecodeError("bad_pex", "not a dict")
    added = _uncompact(d.get(b"added"), 6, socket.AF_INET, "added")
    added += _uncompact(d.get(b"added6"), 18, socket.AF_INET6, "added6")
    dropped = _uncompact(d.get(b"dropped"), 6, socket.AF_INET, "dropped")
    dropped += _uncompact(d.get(b"dropped6"), 18, socket.AF_INET6, "dropped6")
    return added[:PEX_MAX_PEERS], dropped[:PEX_MAX_PEERS]
