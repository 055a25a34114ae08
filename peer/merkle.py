"""BEP 52 (BitTorrent v2) merkle hashing: SHA-256 over 16 KiB leaves.

A file's tree has one leaf per 16 KiB block, padded with zero hashes to a power of two.
A piece's hash (its entry in "piece layers") is the root of its subtree: ``piece_length /
16 KiB`` leaves, zero-padded for a file's last piece. A file that fits in one piece has no
layer: its pieces root is the root over its own blocks only (next power of two).
"""

from __future__ import annotations

import hashlib
from typing import List, Tuple, Union

__all__ = ["LEAF", "merkle_root", "next_pow2", "piece_root", "file_root", "piece_hash"]

LEAF = 16 * 1024
_ZERO32 = bytes(32)
Buffer = Union[bytes, bytearray, memoryview]


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def merkle_root(hashes: List[bytes], width: int, pad: bytes = _ZERO32) -> bytes:
    """Root over ``hashes`` padded with ``pad`` to ``width`` (a power of two) leaves."""
    level = hashes + [pad] * (width - len(hashes))
    sha256 = hashlib.sha256
    while len(level) > 1:
        level = [sha256(level[k] + level[k + 1]).digest() for k in range(0, len(level), 2)]
    return level[0]


def _leaves(data: Buffer) -> List[bytes]:
    view = memoryview(data)
    sha256 = hashlib.sha256
    return [sha256(view[k:k + LEAF]).digest() for k in range(0, len(view), LEAF)]


def piece_root(piece: Buffer, blocks_per_piece: int) -> Tuple[bytes, List[bytes]]:
    """(subtree root of one piece padded to the full piece width, its leaf hashes)."""
    leaves = _leaves(piece)
    return merkle_root(leaves, blocks_per_piece), leaves


def file_root(piece_roots: List[bytes], first_leaves: List[bytes], piece_length: int) -> bytes:
    """A file's pieces root from its piece roots (``first_leaves``: the leaves of its only
    piece, needed when the file fits in one piece)."""
    if len(piece_roots) == 1:
        return merkle_root(first_leaves, next_pow2(len(first_leaves)))
    zero_piece = merkle_root([], piece_length // LEAF)
    return merkle_root(piece_roots, next_pow2(len(piece_roots)), zero_piece)


def piece_hash(data: Buffer, piece_length: int, single_piece_file: bool) -> bytes:
    """What a v2 piece must hash to: its layer entry, or for a file that fits in one piece
    its pieces root."""
    leaves = _leaves(data)
    if single_piece_file:
        return merkle_root(leaves, next_pow2(len(leaves)))
    return merkle_root(leaves, piece_length // LEAF)
