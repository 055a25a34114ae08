"""Files of a torrent: the v1 ``files`` list (with BEP 47 pad files) and the v2 ``file tree``
(BEP 52), every path component checked so no torrent can write outside its directory.

Files sit at ``offset`` in the torrent's *piece space*: v1 concatenates them (pad files
included); v2 starts every file on a piece boundary. Pad files and v2 alignment gaps are
zeros that are never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

__all__ = [
    "FileEntry", "FileTreeError", "check_component", "parse_v1_files", "parse_file_tree",
    "check_unique", "MAX_FILES", "MAX_COMPONENT_BYTES", "MAX_DEPTH", "MAX_PATH_BYTES",
]

MAX_FILES = 100_000
MAX_COMPONENT_BYTES = 255  # what ext4 and most file systems allow for one name
MAX_DEPTH = 32  # directory levels below the torrent's directory
MAX_PATH_BYTES = 4000  # the whole relative path (PATH_MAX is 4096 on Linux)


class FileTreeError(ValueError):
    """An unsafe or malformed file list (metainfo wraps it into MetainfoError)."""


@dataclass(frozen=True)
class FileEntry:
    path: Tuple[str, ...]  # components below the torrent's directory; (name,) single-file
    length: int
    offset: int  # in piece space
    pad: bool = False  # BEP 47 pad file: zeros, not stored
    pieces_root: Optional[bytes] = None  # v2: the file's merkle root (None when empty)

    @property
    def end(self) -> int:
        return self.offset + self.length


def check_component(raw: Any, what: str = "path component") -> str:
    """A single file or directory name: UTF-8, 1..255 bytes, not '.', '..', no separator,
    no NUL or other control character."""
    if not isinstance(raw, bytes):
        raise FileTreeError(f"{what} must be a string")
    if not 0 < len(raw) <= MAX_COMPONENT_BYTES:
        raise FileTreeError(f"{what} must be 1..{MAX_COMPONENT_BYTES} bytes")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileTreeError(f"{what} is not UTF-8") from None
    if name in (".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        raise FileTreeError(f"unsafe {what} {name[:64]!r}")
    return name


def _check_path(parts: Tuple[str, ...]) -> None:
    if len(parts) > MAX_DEPTH:
        raise FileTreeError(f"path deeper than {MAX_DEPTH} levels")
    if sum(len(p.encode()) + 1 for p in parts) > MAX_PATH_BYTES:
        raise FileTreeError(f"path longer than {MAX_PATH_BYTES} bytes")


def _int(d: Dict[bytes, Any], key: bytes, what: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise FileTreeError(f"{what} must be a non-negative integer")
    return v


def check_unique(files: List[FileEntry]) -> None:
    """No two files at one path, and no file where another needs a directory."""
    seen: Set[Tuple[str, ...]] = set()
    dirs: Set[Tuple[str, ...]] = set()
    for f in files:
        if f.pad:
            continue
        if f.path in seen or f.path in dirs:
            raise FileTreeError(f"path {'/'.join(f.path)[:200]!r} used twice")
        seen.add(f.path)
        for k in range(1, len(f.path)):
            dirs.add(f.path[:k])
    clash = seen & dirs
    if clash:
        raise FileTreeError(f"{'/'.join(next(iter(clash)))[:200]!r} is a file and a directory")


def parse_v1_files(raw: Any) -> List[FileEntry]:
    """The info dict's ``files`` list, concatenated from offset 0."""
    if not isinstance(raw, list) or not raw:
        raise FileTreeError("files must be a non-empty list")
    if len(raw) > MAX_FILES:
        raise FileTreeError(f"more than {MAX_FILES} files")
    out: List[FileEntry] = []
    offset = 0
    for k, f in enumerate(raw):
        if not isinstance(f, dict):
            raise FileTreeError(f"files[{k}] must be a dict")
        length = _int(f, b"length", f"files[{k}].length")
        path = f.get(b"path")
        if not isinstance(path, list) or not path:
            raise FileTreeError(f"files[{k}].path must be a non-empty list")
        parts = tuple(check_component(p, f"files[{k}].path component") for p in path)
        _check_path(parts)
        attr = f.get(b"attr", b"")
        pad = isinstance(attr, bytes) and b"p" in attr
        out.append(FileEntry(parts, length, offset, pad))
        offset += length
    check_unique(out)
    return out


def parse_file_tree(tree: Any, piece_length: int) -> List[FileEntry]:
    """The v2 ``file tree`` in its (sorted) key order, each file on a piece boundary."""
    out: List[FileEntry] = []
    _walk(tree, (), out, piece_length)
    if not out:
        raise FileTreeError("file tree has no files")
    return out


def _walk(node: Any, prefix: Tuple[str, ...], out: List[FileEntry], pl: int) -> None:
    if not isinstance(node, dict) or not node:
        raise FileTreeError("file tree node must be a non-empty dict")
    if len(prefix) >= MAX_DEPTH:
        raise FileTreeError(f"path deeper than {MAX_DEPTH} levels")
    for key, child in node.items():
        parts = prefix + (check_component(key, "file tree name"),)
        if isinstance(child, dict) and b"" in child:
            if len(child) != 1 or not isinstance(child[b""], dict):
                raise FileTreeError(f"file {'/'.join(parts)[:200]!r}: malformed leaf")
            _check_path(parts)
            entry = child[b""]
            length = _int(entry, b"length", "file tree length")
            root = entry.get(b"pieces root")
            if length and (not isinstance(root, bytes) or len(root) != 32):
                raise FileTreeError("pieces root must be 32 bytes")
            offset = out[-1].end if out else 0
            offset = -(-offset // pl) * pl  # v2: every file starts a piece
            out.append(FileEntry(parts, length, offset, False, root if length else None))
            if len(out) > MAX_FILES:
                raise FileTreeError(f"more than {MAX_FILES} files")
        else:
            _walk(child, parts, out, pl)
