"""Fluid-model bounds on the time to distribute one file, and the default chunk size.

With F the file size in bits, u_s the seeders' summed upload, u_i and d_i the fetchers'
upload and download (bits/s) and N fetchers:

- lower bound (P2P, every fetcher also uploads): ``max(F/u_s, F/d_min, N·F/(u_s + Σu_i))``
- client-server bound (fetchers upload nothing): ``max(N·F/u_s, F/d_min)``

An uncapped rate (``None``) is infinite capacity: its terms drop to 0. When every term is 0
(e.g. nothing is capped) the bound says nothing and the functions return ``None``; they
also return ``None`` when there are no fetchers or no seeders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from peer.metainfo import default_piece_length

if TYPE_CHECKING:
    from orchestrator.model import Topology

MIN_CHUNK = 16 * 1024
MAX_CHUNK = 16 * 1024 * 1024

Rate = Optional[int]


def _sum(rates: Sequence[Rate]) -> float:
    if any(r is None for r in rates):
        return math.inf
    return float(sum(r for r in rates if r is not None))


def _min(rates: Sequence[Rate]) -> float:
    finite = [float(r) for r in rates if r is not None]
    return min(finite) if finite else math.inf


def _div(bits: float, rate: float) -> float:
    if rate == math.inf:
        return 0.0
    if rate <= 0:
        return math.inf
    return bits / rate


def _finish(terms: list[float]) -> Optional[float]:
    worst = max(terms)
    if worst == 0.0:
        return None
    return worst


def lower_bound(
    size_bytes: int,
    seeders_up_bps: Sequence[Rate],
    fetchers_up_bps: Sequence[Rate],
    fetchers_down_bps: Sequence[Rate],
) -> Optional[float]:
    """Seconds: ``max(F/u_s, F/d_min, N·F/(u_s+Σu_i))``; None when unbounded or no fetchers."""
    n = len(fetchers_down_bps)
    if n == 0 or not seeders_up_bps or size_bytes <= 0:
        return None
    bits = size_bytes * 8.0
    u_s = _sum(seeders_up_bps)
    total_up = u_s + _sum(fetchers_up_bps)
    return _finish([_div(bits, u_s), _div(bits, _min(fetchers_down_bps)), _div(n * bits, total_up)])


def client_server_bound(
    size_bytes: int,
    seeders_up_bps: Sequence[Rate],
    fetchers_down_bps: Sequence[Rate],
) -> Optional[float]:
    """Seconds: ``max(N·F/u_s, F/d_min)``; None when unbounded or no fetchers."""
    n = len(fetchers_down_bps)
    if n == 0 or not seeders_up_bps or size_bytes <= 0:
        return None
    bits = size_bytes * 8.0
    u_s = _sum(seeders_up_bps)
    return _finish([_div(n * bits, u_s), _div(bits, _min(fetchers_down_bps))])


def default_chunk_size(size_bytes: int) -> int:
    """The chunk (piece) size for a file: the agent's own rule, so the orchestrator and the
    agents always agree (64 MiB -> 128 KiB, 1 GiB -> 512 KiB)."""
    return int(default_piece_length(size_bytes))


def topology_bounds(topology: Topology) -> dict[str, dict[str, Any]]:
    """Per content: size, chunks, seeders, fetchers and both bounds (seconds or None).

    Uses each node's initial link. Under ``strategy: client-server`` fetchers upload
    nothing, so the lower bound is the client-server bound. Seeders that also appear in a
    fetch are counted as seeders only.
    """
    out: dict[str, dict[str, Any]] = {}
    for content in topology.contents:
        size = content.size
        if size is None and content.path is not None:
            try:
                size = content.path.stat().st_size
            except OSError:
                size = None
        seeders = [topology.node(n) for n in content.seeders]
        fetchers = [
            topology.node(n) for n in topology.fetchers(content.name) if n not in content.seeders
        ]
        seed_up = [n.link.up_bps for n in seeders]
        fetch_up = [n.link.up_bps for n in fetchers]
        fetch_down = [n.link.down_bps for n in fetchers]
        if size is None:
            lower = cs = None
        else:
            cs = client_server_bound(size, seed_up, fetch_down)
            if topology.strategy == "client-server":
                lower = cs
            else:
                lower = lower_bound(size, seed_up, fetch_up, fetch_down)
        out[content.name] = {
            "size": size,
            "chunk_size": content.chunk_size,
            "chunks": -(-size // content.chunk_size) if size is not None else None,
            "seeders": len(seeders),
            "fetchers": len(fetchers),
            "lower_bound_seconds": lower,
            "client_server_bound_seconds": cs,
        }
    return out
