"""Torrent metainfo: single-file v1 (BEP 3) and hybrid v1+v2 (BEP 52) torrents.

The content id is always the v1 info-hash (SHA-1 of the exact bencoded info dict), hybrid
torrents included; the v2 hash (SHA-256 of the same bytes) is kept for interop.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from peer.bencode import BencodeError, bdecode_dict_spans, bencode

__all__ = [
    "MetainfoError", "Metainfo", "default_piece_length", "create", "parse", "from_info_bytes",
    "MIN_PIECE_LENGTH", "MAX_PIECE_LENGTH", "LEAF",
]

MIN_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 16 * 1024 * 1024  # largest we choose or create by default
MAX_PARSE_PIECE_LENGTH = 256 * 1024 * 1024  # largest accepted from foreign torrents
MAX_TORRENT_BYTES = 64 * 1024 * 1024  # a .torrent larger than this is refused unread
LEAF = 16 * 1024  # BEP 52 merkle leaf (block) size
CREATED_BY = "meshbed"
_READ_CHUNK = 8 * 1024 * 1024  # create(): read this much per syscall (rounded to pieces)
_ZERO32 = bytes(32)


class MetainfoError(ValueError):
    """Invalid or unsupported torrent."""


@dataclass(frozen=True)
class Metainfo:
    info_hash: bytes
    name: str
    length: int
    piece_length: int
    piece_hashes: Tuple[bytes, ...]
    info_bytes: bytes
    hybrid: bool = False
    info_hash_v2: Optional[bytes] = None
    # Hybrid and more than one piece: concatenated per-piece SHA-256 subtree roots (the
    # file's entry in "piece layers"). None otherwise (BEP 52 omits single-piece files).
    piece_layer: Optional[bytes] = None
    pieces_root: Optional[bytes] = None

    def __repr__(self) -> str:
        return (f"Metainfo(name={self.name!r}, infohash={self.hexhash}, length={self.length}, "
                f"piece_length={self.piece_length}, pieces={self.num_pieces}, "
                f"hybrid={self.hybrid})")

    @property
    def hexhash(self) -> str:
        return self.info_hash.hex()

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes)

    def piece_offset(self, i: int) -> int:
        if not 0 <= i < len(self.piece_hashes):
            raise IndexError(f"piece {i} out of range")
        return i * self.piece_length

    def piece_size(self, i: int) -> int:
        off = self.piece_offset(i)
        return min(self.piece_length, self.length - off)

    def to_torrent_bytes(self) -> bytes:
        """A complete .torrent: the exact info bytes, plus "piece layers" for hybrids."""
        # Spliced by hand: re-encoding info could change its bytes and so the info-hash.
        parts = [b"d", bencode("created by"), bencode(CREATED_BY), b"4:info", self.info_bytes]
        if self.piece_layer is not None and self.pieces_root is not None:
            parts += [bencode("piece layers"), bencode({self.pieces_root: self.piece_layer})]
        parts.append(b"e")
        return b"".join(parts)


def default_piece_length(size: int) -> int:
    """Piece length chosen like libtorrent 2.x: the largest power of two not above
    16 * sqrt(size), clamped to 16 KiB..16 MiB (so about sqrt(size) / 16 pieces; e.g.
    1 MiB -> 16 KiB, 64 MiB -> 128 KiB, 1 GiB -> 512 KiB, 4 GiB -> 1 MiB)."""
    if size <= 0:
        return MIN_PIECE_LENGTH
    target = 16.0 * math.sqrt(size)
    pl = MIN_PIECE_LENGTH
    while pl * 2 <= target and pl < MAX_PIECE_LENGTH:
        pl *= 2
    return pl


def _check_piece_length(pl: int, upper: int) -> None:
    if pl < MIN_PIECE_LENGTH or pl & (pl - 1) or pl > upper:
        raise MetainfoError(
            f"piece length {pl} must be a power of two in {MIN_PIECE_LENGTH}..{upper}")


def _check_name(name: str) -> None:
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name):
        raise MetainfoError(f"unsafe or empty torrent name {name!r}")


# ---------------------------------------------------------------- BEP 52 merkle


def _merkle_root(hashes: List[bytes], width: int, pad: bytes) -> bytes:
    """Root over ``hashes`` padded with ``pad`` to ``width`` (a power of two) leaves."""
    level = hashes + [pad] * (width - len(hashes))
    sha256 = hashlib.sha256
    while len(level) > 1:
        level = [sha256(level[k] + level[k + 1]).digest() for k in range(0, len(level), 2)]
    return level[0]


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _v2_piece_root(piece: memoryview, blocks_per_piece: int) -> Tuple[bytes, List[bytes]]:
    sha256 = hashlib.sha256
    leaves = [sha256(piece[k:k + LEAF]).digest() for k in range(0, len(piece), LEAF)]
    return _merkle_root(leaves, blocks_per_piece, _ZERO32), leaves


def _v2_file_root(piece_roots: List[bytes], first_leaves: List[bytes], pl: int) -> bytes:
    if len(piece_roots) == 1:
        # A file within one piece: its tree is as wide as its own blocks, not the piece.
        return _merkle_root(first_leaves, _next_pow2(len(first_leaves)), _ZERO32)
    zero_piece = _merkle_root([], pl // LEAF, _ZERO32)
    return _merkle_root(piece_roots, _next_pow2(len(piece_roots)), zero_piece)


# ---------------------------------------------------------------- create


def _read_full(f: BinaryIO, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _hash_v1(data: memoryview, pl: int, out: List[bytes]) -> None:
    sha1 = hashlib.sha1
    out.extend([sha1(data[off:off + pl]).digest() for off in range(0, len(data), pl)])


def _hash_v2(data: memoryview, pl: int, bpp: int, roots: List[bytes],
             first_leaves: List[bytes]) -> None:
    for off in range(0, len(data), pl):
        root, leaves = _v2_piece_root(data[off:off + pl], bpp)
        roots.append(root)
        if not first_leaves:
            first_leaves.extend(leaves)


def create(
    path: Path, *, piece_length: Optional[int] = None, hybrid: bool = False,
    name: Optional[str] = None,
) -> Metainfo:
    """Make a single-file torrent in one streaming pass (big reads, one hash call per piece)."""
    path = Path(path)
    if not path.is_file():
        raise MetainfoError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size <= 0:
        raise MetainfoError(f"{path}: cannot make a torrent of an empty file")
    pl = piece_length if piece_length is not None else default_piece_length(size)
    _check_piece_length(pl, MAX_PARSE_PIECE_LENGTH)
    name = name if name is not None else path.name
    _check_name(name)

    v1: List[bytes] = []
    v2_roots: List[bytes] = []
    first_leaves: List[bytes] = []
    bpp = pl // LEAF
    chunk = max(pl, _READ_CHUNK // pl * pl)
    total = 0
    # Double buffering: hash chunk k in worker threads (hashlib drops the GIL, and v1/v2
    # run on separate threads) while this thread reads chunk k+1.
    bufs = [memoryview(bytearray(chunk)), memoryview(bytearray(chunk))]
    with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(2) as pool:
        pending: List[Future[Any]] = []
        k = 0
        while True:
            view = bufs[k & 1]
            n = _read_full(f, view)  # type: ignore[arg-type]
            for fut in pending:  # the previous chunk: results in file order
                fut.result()
            pending = []
            if n == 0:
                break
            total += n
            data = view[:n]
            pending.append(pool.submit(_hash_v1, data, pl, v1))
            if hybrid:
                pending.append(pool.submit(_hash_v2, data, pl, bpp, v2_roots, first_leaves))
            k += 1
            if n < chunk:
                for fut in pending:
                    fut.result()
                break
    if total != size:
        raise MetainfoError(f"{path}: file changed size while hashing ({size} -> {total})")

    info: Dict[str, Any] = {"length": size, "name": name, "piece length": pl,
                            "pieces": b"".join(v1)}
    pieces_root = None
    if hybrid:
        pieces_root = _v2_file_root(v2_roots, first_leaves, pl)
        info["meta version"] = 2
        info["file tree"] = {name: {"": {"length": size, "pieces root": pieces_root}}}
    info_bytes = bencode(info)
    return Metainfo(
        info_hash=hashlib.sha1(info_bytes).digest(),
        name=name,
        length=size,
        piece_length=pl,
        piece_hashes=tuple(v1),
        info_bytes=info_bytes,
        hybrid=hybrid,
        info_hash_v2=hashlib.sha256(info_bytes).digest() if hybrid else None,
        piece_layer=b"".join(v2_roots) if hybrid and len(v2_roots) > 1 else None,
        pieces_root=pieces_root,
    )


# ---------------------------------------------------------------- parse


def _field(d: Dict[bytes, Any], key: bytes, typ: type, what: str = "") -> Any:
    if key not in d:
        raise MetainfoError(f"missing field {what or key.decode()!r}")
    v = d[key]
    if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise MetainfoError(f"field {what or key.decode()!r} must be an integer")
    if not isinstance(v, typ):
        raise MetainfoError(f"field {what or key.decode()!r} has the wrong type")
    return v


def _parse_info(info_bytes: bytes, piece_layers: Optional[Dict[bytes, Any]]) -> Metainfo:
    try:
        info, _ = bdecode_dict_spans(info_bytes)
    except BencodeError as e:
        raise MetainfoError(f"info is not valid bencoding: {e}") from None
    if b"files" in info:
        raise MetainfoError("multi-file torrents are not supported")
    meta_version = info.get(b"meta version", 1)
    if b"pieces" not in info and meta_version == 2:
        raise MetainfoError("v2-only torrents are not supported (need v1 piece hashes)")
    raw_name = _field(info, b"name", bytes)
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise MetainfoError("torrent name is not UTF-8") from None
    _check_name(name)
    pl = _field(info, b"piece length", int)
    _check_piece_length(pl, MAX_PARSE_PIECE_LENGTH)
    length = _field(info, b"length", int)
    if length <= 0:
        raise MetainfoError(f"length {length} must be positive")
    pieces = _field(info, b"pieces", bytes)
    if len(pieces) % 20:
        raise MetainfoError(f"pieces length {len(pieces)} is not a multiple of 20")
    num = len(pieces) // 20
    if num != -(-length // pl):
        raise MetainfoError(
            f"{num} piece hashes do not match length {length} with piece length {pl}")
    hashes = tuple(pieces[k:k + 20] for k in range(0, len(pieces), 20))

    hybrid = meta_version == 2 and b"file tree" in info
    pieces_root = piece_layer = None
    if hybrid:
        pieces_root = _single_file_root(info[b"file tree"], raw_name, length)
        # Without "piece layers" (e.g. from_info_bytes) the v1 part is all we need.
        layer = piece_layers.get(pieces_root) if num > 1 and piece_layers else None
        if layer is not None:
            if not isinstance(layer, bytes) or len(layer) != 32 * num:
                raise MetainfoError("piece layer of the wrong size for the file")
            roots = [layer[k:k + 32] for k in range(0, len(layer), 32)]
            if _v2_file_root(roots, [], pl) != pieces_root:
                raise MetainfoError("piece layer does not match the file's pieces root")
            piece_layer = layer
    return Metainfo(
        info_hash=hashlib.sha1(info_bytes).digest(),
        name=name,
        length=length,
        piece_length=pl,
        piece_hashes=hashes,
        info_bytes=info_bytes,
        hybrid=hybrid,
        info_hash_v2=hashlib.sha256(info_bytes).digest() if hybrid else None,
        piece_layer=piece_layer,
        pieces_root=pieces_root,
    )


def _single_file_root(tree: Any, name: bytes, length: int) -> bytes:
    if not isinstance(tree, dict) or len(tree) != 1 or name not in tree:
        raise MetainfoError("multi-file torrents are not supported (file tree)")
    node = tree[name]
    entry = node.get(b"") if isinstance(node, dict) else None
    if not isinstance(entry, dict) or len(node) != 1:
        raise MetainfoError("multi-file torrents are not supported (file tree)")
    if _field(entry, b"length", int, "file tree length") != length:
        raise MetainfoError("file tree length differs from the v1 length")
    root = _field(entry, b"pieces root", bytes, "pieces root")
    if len(root) != 32:
        raise MetainfoError("pieces root must be 32 bytes")
    return root


def from_info_bytes(info: bytes) -> Metainfo:
    """Metainfo from the bencoded info dict alone (no piece layers)."""
    if len(info) > MAX_TORRENT_BYTES:
        raise MetainfoError("info dict too large")
    return _parse_info(bytes(info), None)


def parse(data: bytes) -> Metainfo:
    """Parse a .torrent file's bytes."""
    if len(data) > MAX_TORRENT_BYTES:
        raise MetainfoError(f"torrent of {len(data)} bytes is too large")
    data = bytes(data)
    try:
        top, spans = bdecode_dict_spans(data)
    except BencodeError as e:
        raise MetainfoError(f"not a valid torrent (bencoding): {e}") from None
    if b"info" not in top:
        raise MetainfoError("missing field 'info'")
    if not isinstance(top[b"info"], dict):
        raise MetainfoError("field 'info' must be a dict")
    start, end = spans[b"info"]
    layers = top.get(b"piece layers")
    return _parse_info(data[start:end], layers if isinstance(layers, dict) else None)
