"""Deterministic synthetic content.

The orchestrator and every agent must produce the very same bytes from (seed, name, size),
so the stream is defined here once and nowhere else: a Mersenne Twister (``random.Random``)
seeded with the SHA-256 of ``meshbed:{seed}:{name}``, read with ``randbytes`` in chunks whose
size is a multiple of 4 bytes (so chunking never changes the stream). Stable on Python 3.9+.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

from peer.files import write_atomic

CHUNK = 1 << 20  # multiple of 4: randbytes consumes whole 32-bit words


def _rng(seed: int, name: str) -> random.Random:
    digest = hashlib.sha256(f"meshbed:{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def iter_bytes(seed: int, name: str, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield the content in chunks of ``chunk`` bytes (the last one shorter)."""
    if chunk % 4:
        raise ValueError("chunk must be a multiple of 4")
    rng = _rng(seed, name)
    left = size
    while left > 0:
        n = min(chunk, left)
        # randbytes(n) for n not a multiple of 4 only happens on the last chunk.
        yield rng.randbytes(n)
        left -= n


def write_file(path: Path, seed: int, name: str, size: int) -> str:
    """Write the content to ``path`` atomically (temp file + rename); return its SHA-256 hex."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for block in iter_bytes(seed, name, size):
            h.update(block)
            yield block

    write_atomic(path, hashed())
    return h.hexdigest()


def sha256(seed: int, name: str, size: int) -> str:
    h = hashlib.sha256()
    for block in iter_bytes(seed, name, size):
        h.update(block)
    return h.hexdigest()
