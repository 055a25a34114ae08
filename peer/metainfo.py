"""Torrent metainfo: v1 (BEP 3), hybrid v1+v2 and v2-only (BEP 52) torrents, single-file
or multi-file (peer/filetree.py checks every path).

The content id ``info_hash`` is what handshakes carry: the v1 info-hash (SHA-1 of the exact
bencoded info dict) for v1 and hybrid torrents, the SHA-256 truncated to 20 bytes for
v2-only ones. ``info_hash_v2`` is the full SHA-256 when the torrent has a v2 part.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from peer import merkle
from peer.bencode import BencodeError, bdecode_dict_spans, bencode
from peer.filetree import FileEntry, FileTreeError, check_component, parse_file_tree, parse_v1_files
from peer.merkle import LEAF

__all__ = [
    "MetainfoError", "Metainfo", "default_piece_length", "create", "parse", "from_info_bytes",
    "MIN_PIECE_LENGTH", "MAX_PIECE_LENGTH", "LEAF", "FileEntry",
]

MIN_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 16 * 1024 * 1024  # largest we choose or create by default
MAX_PARSE_PIECE_LENGTH = 256 * 1024 * 1024  # largest accepted from foreign torrents
MAX_TORRENT_BYTES = 64 * 1024 * 1024  # a .torrent larger than this is refused unread
CREATED_BY = "meshbed"
_READ_CHUNK = 2 * 1024 * 1024  # create(): read this much per syscall (rounded to pieces)


class MetainfoError(ValueError):
    """Invalid or unsupported torrent."""


@dataclass(frozen=True)
class Metainfo:
    info_hash: bytes
    name: str
    length: int  # end of the piece space (v1: all files and pads; v2: aligned files)
    piece_length: int
    piece_hashes: Tuple[bytes, ...]  # 20-byte SHA-1s; 32-byte merkle roots when v2_only
    info_bytes: bytes
    hybrid: bool = False
    info_hash_v2: Optional[bytes] = None
    # Single-file torrents with a v2 part and more than one piece: the file's entry in
    # "piece layers" (concatenated per-piece SHA-256 subtree roots); None otherwise.
    piece_layer: Optional[bytes] = None
    pieces_root: Optional[bytes] = None
    files: Tuple[FileEntry, ...] = ()
    multi_file: bool = False  # payload is a directory called ``name``
    v2_only: bool = False
    piece_layers: Dict[bytes, bytes] = field(default_factory=dict)  # verified, per root
    v2_pieces: Tuple[Tuple[int, bool], ...] = ()  # v2_only: (size, file fits one piece)
    # BEP 12 tiers from announce-list (or announce): outside the info dict, so changing
    # them (dataclasses.replace) keeps the infohash.
    trackers: Tuple[Tuple[str, ...], ...] = ()

    def __repr__(self) -> str:
        kind = "v2" if self.v2_only else "hybrid" if self.hybrid else "v1"
        return (f"Metainfo(name={self.name!r}, infohash={self.hexhash}, length={self.length}, "
                f"piece_length={self.piece_length}, pieces={self.num_pieces}, "
                f"files={len(self.files)}, kind={kind})")

    @property
    def hexhash(self) -> str:
        return self.info_hash.hex()

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes)

    @property
    def total_size(self) -> int:
        """Bytes of real file content (no pads, no v2 alignment gaps)."""
        return sum(f.length for f in self.files if not f.pad)

    def piece_offset(self, i: int) -> int:
        if not 0 <= i < len(self.piece_hashes):
            raise IndexError(f"piece {i} out of range")
        return i * self.piece_length

    def piece_size(self, i: int) -> int:
        off = self.piece_offset(i)
        if self.v2_only:
            return self.v2_pieces[i][0]  # a v2 piece never spans files
        return min(self.piece_length, self.length - off)

    def verify_piece(self, i: int, data: Any) -> bool:
        """SHA-1 (v1, hybrid) or merkle subtree root (v2-only) check of a whole piece."""
        if len(data) != self.piece_size(i):
            return False
        if not self.v2_only:
            return hashlib.sha1(data).digest() == self.piece_hashes[i]
        return merkle.piece_hash(data, self.piece_length, self.v2_pieces[i][1]) == \
            self.piece_hashes[i]

    def to_torrent_bytes(self) -> bytes:
        """A complete .torrent: the exact info bytes, plus "piece layers" for v2 parts."""
        # Spliced by hand: re-encoding info could change its bytes and so the info-hash.
        parts = [b"d"]
        if self.trackers:
            parts += [bencode("announce"), bencode(self.trackers[0][0]),
                      bencode("announce-list"), bencode([list(t) for t in self.trackers])]
        parts += [bencode("created by"), bencode(CREATED_BY), b"4:info", self.info_bytes]
        if self.piece_layers:
            parts += [bencode("piece layers"), bencode(dict(self.piece_layers))]
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
    try:
        check_component(name.encode("utf-8"), "torrent name")
    except (FileTreeError, UnicodeEncodeError) as e:
        raise MetainfoError(f"unsafe or empty torrent name {name!r}: {e}") from None


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
        root, leaves = merkle.piece_root(data[off:off + pl], bpp)
        roots.append(root)
        if not first_leaves:
            first_leaves.extend(leaves)


def create(
    path: Path, *, piece_length: Optional[int] = None, hybrid: bool = False,
    name: Optional[str] = None, v2_only: bool = False,
) -> Metainfo:
    """Make a torrent of a file or a directory (multi-file): v1, hybrid v1+v2 or v2-only.
    A single file takes the fast path: one streaming pass, big reads, hashing in threads."""
    path = Path(path)
    if path.is_dir() or v2_only:
        from peer.maketree import tree_info  # noqa: PLC0415 - keeps this module small

        try:
            tinfo, tlayers = tree_info(path, piece_length=piece_length, hybrid=hybrid,
                                       v2_only=v2_only, name=name)
        except FileTreeError as e:
            raise MetainfoError(f"{path}: {e}") from None
        if piece_length is not None:
            _check_piece_length(piece_length, MAX_PARSE_PIECE_LENGTH)
        return _parse_info(bencode(tinfo), tlayers)
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
    layers: Dict[bytes, bytes] = {}
    if hybrid:
        pieces_root = merkle.file_root(v2_roots, first_leaves, pl)
        info["meta version"] = 2
        info["file tree"] = {name: {"": {"length": size, "pieces root": pieces_root}}}
        if len(v2_roots) > 1:
            layers[pieces_root] = b"".join(v2_roots)
    return _parse_info(bencode(info), layers)


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


def _v2_layers(files: List[FileEntry], given: Optional[Dict[bytes, Any]], pl: int,
               required: bool) -> Dict[bytes, bytes]:
    """Each multi-piece file's layer from "piece layers", checked against its root."""
    out: Dict[bytes, bytes] = {}
    for f in files:
        n = -(-f.length // pl)
        if n <= 1 or f.pieces_root is None:
            continue
        layer = given.get(f.pieces_root) if given else None
        if layer is None:
            if required:
                raise MetainfoError(
                    f"v2-only torrent lacks the piece layer of {'/'.join(f.path)[:200]!r}")
            continue
        if not isinstance(layer, bytes) or len(layer) != 32 * n:
            raise MetainfoError("piece layer of the wrong size for the file")
        roots = [layer[k:k + 32] for k in range(0, len(layer), 32)]
        if merkle.file_root(roots, [], pl) != f.pieces_root:
            raise MetainfoError("piece layer does not match the file's pieces root")
        out[f.pieces_root] = layer
    return out


def _v1_part(info: Dict[bytes, Any], name: str, pl: int) -> Tuple[List[FileEntry], int]:
    if b"files" in info:
        if b"length" in info:
            raise MetainfoError("both length and files given")
        files = parse_v1_files(info[b"files"])
    else:
        length = _field(info, b"length", int)
        files = [FileEntry((name,), length, 0)]
    total = sum(f.length for f in files)
    if total <= 0:
        raise MetainfoError(f"length {total} must be positive")
    return files, total


def _merge_v2(v1: List[FileEntry], v2: List[FileEntry], pl: int) -> List[FileEntry]:
    """Hybrid: the v1 files (pads left out) must be the v2 files, each on a piece boundary;
    returns the v1 list with each file's pieces root."""
    real = [f for f in v1 if not f.pad]
    if [(f.path, f.length) for f in real] != [(f.path, f.length) for f in v2]:
        if len(real) == 1 and len(v2) == 1 and real[0].path == v2[0].path:
            raise MetainfoError("file tree length differs from the v1 length")
        raise MetainfoError("file tree does not match the v1 files")
    roots = iter(v2)
    out: List[FileEntry] = []
    for f in v1:
        if f.pad:
            out.append(f)
            continue
        if f.length and f.offset % pl:
            raise MetainfoError(f"hybrid file {'/'.join(f.path)[:200]!r} not piece-aligned")
        out.append(FileEntry(f.path, f.length, f.offset, False, next(roots).pieces_root))
    return out


def _parse_info(info_bytes: bytes, piece_layers: Optional[Dict[bytes, Any]]) -> Metainfo:
    try:
        info, _ = bdecode_dict_spans(info_bytes)
    except BencodeError as e:
        raise MetainfoError(f"info is not valid bencoding: {e}") from None
    raw_name = _field(info, b"name", bytes)
    try:
        name = check_component(raw_name, "torrent name")
    except FileTreeError as e:
        raise MetainfoError(str(e)) from None
    pl = _field(info, b"piece length", int)
    _check_piece_length(pl, MAX_PARSE_PIECE_LENGTH)
    has_v2 = info.get(b"meta version") == 2
    if has_v2 and b"file tree" not in info:
        raise MetainfoError("v2-only torrent without a file tree")
    try:
        v2_files = parse_file_tree(info[b"file tree"], pl) if has_v2 else []
        if b"pieces" not in info and has_v2:
            return _v2_only(info_bytes, name, pl, v2_files, piece_layers)
        files, total = _v1_part(info, name, pl)
    except FileTreeError as e:
        raise MetainfoError(str(e)) from None
    pieces = _field(info, b"pieces", bytes)
    if len(pieces) % 20:
        raise MetainfoError(f"pieces length {len(pieces)} is not a multiple of 20")
    num = len(pieces) // 20
    if num != -(-total // pl):
        raise MetainfoError(
            f"{num} piece hashes do not match length {total} with piece length {pl}")
    layers: Dict[bytes, bytes] = {}
    if has_v2:
        files = _merge_v2(files, v2_files, pl)
        # Without "piece layers" (e.g. from_info_bytes) the v1 part is all we need.
        layers = _v2_layers(files, piece_layers, pl, required=False)
    multi = b"files" in info
    root = files[0].pieces_root if has_v2 and not multi else None
    return Metainfo(
        info_hash=hashlib.sha1(info_bytes).digest(),
        name=name,
        length=total,
        piece_length=pl,
        piece_hashes=tuple(pieces[k:k + 20] for k in range(0, len(pieces), 20)),
        info_bytes=info_bytes,
        hybrid=has_v2,
        info_hash_v2=hashlib.sha256(info_bytes).digest() if has_v2 else None,
        piece_layer=layers.get(root) if root else None,
        pieces_root=root,
        files=tuple(files),
        multi_file=multi,
        piece_layers=layers,
    )


def _v2_only(info_bytes: bytes, name: str, pl: int, files: List[FileEntry],
             piece_layers: Optional[Dict[bytes, Any]]) -> Metainfo:
    layers = _v2_layers(files, piece_layers, pl, required=True)
    hashes: List[bytes] = []
    sizes: List[Tuple[int, bool]] = []
    for f in files:
        if f.pieces_root is None:
            continue  # empty file: no pieces
        layer = layers.get(f.pieces_root)
        if layer is None:  # fits in one piece: its root is the piece hash
            hashes.append(f.pieces_root)
            sizes.append((f.length, True))
            continue
        hashes += [layer[k:k + 32] for k in range(0, len(layer), 32)]
        sizes += [(min(pl, f.length - k * pl), False) for k in range(len(layer) // 32)]
    if not hashes:
        raise MetainfoError("length 0 must be positive")
    single = len(files) == 1 and files[0].path == (name,)
    digest = hashlib.sha256(info_bytes).digest()
    return Metainfo(
        info_hash=digest[:20],  # what v2 handshakes carry
        name=name,
        length=files[-1].end,
        piece_length=pl,
        piece_hashes=tuple(hashes),
        info_bytes=info_bytes,
        info_hash_v2=digest,
        piece_layer=layers.get(files[0].pieces_root or b"") if single else None,
        pieces_root=files[0].pieces_root if single else None,
        files=tuple(files),
        multi_file=not single,
        v2_only=True,
        piece_layers=layers,
        v2_pieces=tuple(sizes),
    )


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
    meta = _parse_info(data[start:end], layers if isinstance(layers, dict) else None)
    trackers = _trackers(top)
    return dataclasses.replace(meta, trackers=trackers) if trackers else meta


MAX_TIERS = 20
MAX_TRACKERS_PER_TIER = 20
MAX_URL = 1024


def _url(raw: Any) -> Optional[str]:
    if not isinstance(raw, bytes) or not 0 < len(raw) <= MAX_URL:
        return None
    try:
        url = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return url if url.split("://", 1)[0].lower() in ("http", "https", "udp") else None


def _trackers(top: Dict[bytes, Any]) -> Tuple[Tuple[str, ...], ...]:
    """announce-list tiers (BEP 12), else announce; unusable entries are skipped, not
    errors (clients ignore trackers they cannot use)."""
    tiers: List[Tuple[str, ...]] = []
    raw = top.get(b"announce-list")
    if isinstance(raw, list):
        for tier in raw[:MAX_TIERS]:
            if isinstance(tier, list):
                urls = [u for u in map(_url, tier[:MAX_TRACKERS_PER_TIER]) if u]
                if urls:
                    tiers.append(tuple(dict.fromkeys(urls)))
    if not tiers:
        url = _url(top.get(b"announce"))
        if url:
            tiers.append((url,))
    return tuple(tiers)
