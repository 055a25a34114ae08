"""Whole pieces kept in memory for uploading: the pieces a swarm asks for are mostly the ones
just verified (rarest first spreads the newest), so their blocks are served from here instead
of one trip to the I/O thread per 16 KiB block. That trip (a thread wake-up, the GIL handed
over and back, the loop woken through its self-pipe) cost more CPU than the rest of serving a
block: with 65 agents on 2 cores it kept the CPU saturated (docs/BENCHMARKS.md, "Serving
blocks from memory")."""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from peer.storage import check_span

# Per torrent. 4 MiB holds 16 pieces of 256 KiB; a piece larger than the whole cache is read
# block by block as before. An agent is ~29 MB, so this stays a small share of it, and a
# torrent lets its cache go when no block was asked for in a while (peer/torrent.py CACHE_IDLE).
CACHE_BYTES = 4 << 20


class PieceCache:
    """Least recently used whole pieces, up to ``max_bytes``. Not thread-safe: the event
    loop's own."""

    __slots__ = ("max_bytes", "size", "hits", "misses", "_pieces")

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._pieces: OrderedDict[int, bytes] = OrderedDict()

    def fits(self, length: int) -> bool:
        return 0 < length <= self.max_bytes

    def get(self, index: int) -> Optional[bytes]:
        piece = self._pieces.get(index)
        if piece is None:
            self.misses += 1
            return None
        self.hits += 1
        self._pieces.move_to_end(index)
        return piece

    def put(self, index: int, piece: bytes) -> None:
        if not self.fits(len(piece)):
            return
        old = self._pieces.pop(index, None)
        if old is not None:
            self.size -= len(old)
        while self._pieces and self.size + len(piece) > self.max_bytes:
            _, dropped = self._pieces.popitem(last=False)
            self.size -= len(dropped)
        self._pieces[index] = piece
        self.size += len(piece)

    def clear(self) -> None:
        self._pieces.clear()
        self.size = 0


def block_of(piece: bytes, index: int, begin: int, length: int) -> bytes:
    """Bytes ``begin..begin+length`` of a cached piece, with the bounds check the store
    makes on a read."""
    check_span(index, begin, length, len(piece))
    return piece[begin:begin + length]
