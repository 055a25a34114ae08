"""Info dicts for multi-file and v2-only torrents (metainfo.create's general path).

Files are taken in sorted path order (the order of BEP 52's sorted file tree), so the v1
``files`` list and the v2 ``file tree`` agree. Hybrid torrents get BEP 47 pad files between
files so every file starts a piece, as BEP 52 requires. Symbolic links are refused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from peer import merkle
from peer.filetree import FileTreeError, check_component

__all__ = ["tree_info", "list_files"]

_CHUNK_PIECES_BYTES = 8 * 1024 * 1024


def list_files(root: Path) -> List[Tuple[Tuple[str, ...], Path]]:
    """Every regular file below ``root`` as (path components, absolute path), sorted."""
    out: List[Tuple[Tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise FileTreeError(f"{os.path.join(dirpath, d)}: symbolic links are refused")
        for fn in filenames:
            full = Path(dirpath) / fn
            if full.is_symlink() or not full.is_file():
                raise FileTreeError(f"{full}: not a regular file")
            rel = full.relative_to(root).parts
            out.append((tuple(check_component(p.encode("utf-8", "surrogateescape"))
                              for p in rel), full))
    out.sort(key=lambda e: [p.encode() for p in e[0]])
    return out


class _V1Stream:
    """SHA-1 per piece over the concatenated files (and pads)."""

    def __init__(self, pl: int) -> None:
        self.pl = pl
        self.hashes: List[bytes] = []
        self._h = hashlib.sha1()
        self._fill = 0

    def feed(self, data: memoryview) -> None:
        pos = 0
        while pos < len(data):
            n = min(self.pl - self._fill, len(data) - pos)
            self._h.update(data[pos:pos + n])
            self._fill += n
            pos += n
            if self._fill == self.pl:
                self.hashes.append(self._h.digest())
                self._h = hashlib.sha1()
                self._fill = 0

    def finish(self) -> None:
        if self._fill:
            self.hashes.append(self._h.digest())
            self._fill = 0


def tree_info(path: Path, *, piece_length: Optional[int], hybrid: bool, v2_only: bool,
              name: Optional[str]) -> Tuple[Dict[str, Any], Dict[bytes, bytes]]:
    """(info dict, piece layers) for a directory, or for one file when ``v2_only``."""
    from peer.metainfo import default_piece_length  # noqa: PLC0415 - circular otherwise

    path = Path(path)
    name = name if name is not None else path.name
    check_component(name.encode("utf-8", "surrogateescape"), "torrent name")
    if path.is_dir():
        files = list_files(path)
        if not files:
            raise FileTreeError("an empty directory has nothing to share")
    elif path.is_file():
        files = [((name,), path)]
    else:
        raise FileTreeError("not a regular file or directory")
    sizes = [p.stat().st_size for _, p in files]
    total = sum(sizes)
    if total <= 0:
        raise FileTreeError("cannot make a torrent of empty files only")
    pl = piece_length if piece_length is not None else default_piece_length(total)
    if pl < merkle.LEAF or pl & (pl - 1):
        raise FileTreeError(f"piece length {pl} must be a power of two >= 16 KiB")
    with_v1 = not v2_only
    with_v2 = hybrid or v2_only
    v1 = _V1Stream(pl)
    v1_files: List[Dict[str, Any]] = []
    tree: Dict[str, Any] = {}
    layers: Dict[bytes, bytes] = {}
    chunk = max(pl, _CHUNK_PIECES_BYTES // pl * pl)
    buf = memoryview(bytearray(chunk))
    for k, ((parts, full), size) in enumerate(zip(files, sizes)):
        roots: List[bytes] = []
        first_leaves: List[bytes] = []
        got = 0
        with open(full, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
                data = buf[:n]
                if with_v1:
                    v1.feed(data)
                if with_v2:
                    for off in range(0, n, pl):
                        root, leaves = merkle.piece_root(data[off:off + pl], pl // merkle.LEAF)
                        roots.append(root)
                        if not first_leaves:
                            first_leaves = leaves
        if got != size:
            raise FileTreeError(f"{full}: changed size while hashing ({size} -> {got})")
        v1_files.append({"length": size, "path": list(parts)})
        if with_v2:
            node = tree
            for p in parts:
                node = node.setdefault(p, {})
            leaf: Dict[str, Any] = {"length": size}
            if size:
                leaf["pieces root"] = merkle.file_root(roots, first_leaves, pl)
                if len(roots) > 1:
                    layers[leaf["pieces root"]] = b"".join(roots)
            node[""] = leaf
        pad = -size % pl
        if with_v1 and hybrid and pad and k < len(files) - 1:
            v1.feed(memoryview(bytes(pad)))
            v1_files.append({"attr": "p", "length": pad, "path": [".pad", str(pad)]})
    v1.finish()
    info: Dict[str, Any] = {"name": name, "piece length": pl}
    if with_v1:
        info["pieces"] = b"".join(v1.hashes)
        if path.is_dir():
            info["files"] = v1_files
        else:
            info["length"] = total
    if with_v2:
        info["meta version"] = 2
        info["file tree"] = tree
    return info, layers
