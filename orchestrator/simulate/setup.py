"""Reading a topology for `meshbed simulate`: the loader of `run` (same checks, same
``FILE:LINE`` errors) with a higher node limit, a note on the fields only a real backend
uses, and a refusal up front when the simulation would not fit in this machine's memory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from orchestrator import backends as registry
from orchestrator import loader
from orchestrator.errors import InputError
from orchestrator.model import Topology
from orchestrator.units import format_size
from peer.core import CoreConfig

MAX_SIM_NODES = 1_000_000
# Fitted to bench/simulate_scale.py (peak RSS: 1,000 peers 448 MiB, uncapped) and
# tracemalloc: per node, per connection side (PeerState, channels, endpoints), per address
# a core knows (KnownPeer; the address tuple is the node's own, shared), per piece of a
# core; the base is the interpreter with meshbed loaded. Connections per node settle near 55.
BASE_BYTES = 80 << 20
NODE_BYTES = 12 << 10
CONN_SIDE_BYTES = 2560
KNOWN_BYTES = 220
PIECE_BYTES = 40
SIDES_SLACK = 8  # connections per node settle above max_peers (accepted ones: 20 at max_peers 12)
MEMORY_SHARE = 0.8  # of MemAvailable the simulation may plan to use
# Beyond this many nodes every agent keeps fewer connections and addresses (the costs that
# grow with them: HAVE fan-out, ticks, PEX, memory); below it, the agent's own defaults.
LARGE_SWARM = 1000
WHOLE_PIECE_BLOCKS = 1e9  # CoreConfig.block_seconds so large that every block is a whole piece
# 10 connections dialed (accepted ones take a node to ~18) and 50 addresses: at 1,200 peers
# (bench/simulate_scale.py's swarm, 100 addresses) the distribution took 15.81 s with 20,
# 15.85 s with 15, 15.97 s with 12 and 16.07 s with 10 (median fetcher 14.86-14.89 s) for
# 77.3, 67.7, 63.6 and 52.1 CPU s (the last on a quieter machine: 12 took 56.5 s there);
# 50 addresses instead of 100 (with 12): 15.89 s, 54.1 CPU s, 14 MiB less
LARGE_MAX_PEERS = 10
LARGE_MAX_KNOWN = 50
# ... and HAVEs reach a node in one event per 50 ms instead of 10 ms (40 % fewer events; at
# 400 peers x 256 pieces the distribution time moved 20.57 -> 20.26 s, the median 18.0 -> 17.9 s)
LARGE_HAVE_QUANTUM = 0.050
# Capped agents meet and drop more peers than they hold; what they keep beyond the terms
# above is not attributed: fitted to bench/simulate_scale.py at caps of 10/50 (peak RSS
# 186 MiB at 1,200 peers, 1,285 MiB at 10,000: ~128 KiB per node from one to the other;
# was ~202 KiB at 20/100 before timers became heap entries, pickers shared their bit ints
# and cores the nodes' address tuples).
LARGE_NODE_BYTES = 50 << 10


def capped(topo: Topology) -> bool:
    """Do the agents run with LARGE_MAX_PEERS / LARGE_MAX_KNOWN? In swarms of more than
    LARGE_SWARM nodes. Not under client-server: fetchers hold one connection, the server's,
    and caps would only make the server turn fetchers away (1,000 fetchers: 3,046 s capped
    at 10 peers, 2,754 s uncapped; the bound is 2,684 s)."""
    return len(topo.nodes) > LARGE_SWARM and topo.strategy != "client-server"


def core_config(topo: Topology) -> CoreConfig:
    """The agents' CoreConfig: the agent's defaults; with > LARGE_SWARM nodes asking for
    whole pieces (one event per piece instead of up to 16) and, if ``capped``, capped."""
    if len(topo.nodes) <= LARGE_SWARM:
        return CoreConfig()
    if not capped(topo):
        return CoreConfig(block_seconds=WHOLE_PIECE_BLOCKS)
    return CoreConfig(max_peers=LARGE_MAX_PEERS, max_known=LARGE_MAX_KNOWN,
                      block_seconds=WHOLE_PIECE_BLOCKS)


@contextlib.contextmanager
def _node_limit(limit: int) -> Iterator[None]:
    """The loader's node limit protects real hosts; a simulation only needs memory, which
    is checked separately. (Single-threaded CLI: a module global is safe to swap here.)"""
    saved = loader.MAX_NODES
    loader.MAX_NODES = limit
    try:
        yield
    finally:
        loader.MAX_NODES = saved


def load(path: Path) -> Topology:
    with _node_limit(MAX_SIM_NODES):
        return loader.load_topology(path)


def _option_default(backend: str, key: str) -> object:
    try:
        return next((o.default for o in registry.get(backend).group_options if o.key == key), None)
    except Exception:  # noqa: BLE001 - a plugin that does not load: the note names the key
        return None


def backend_only_note(topo: Topology) -> Optional[str]:
    """One line naming the fields the simulation ignores, or None."""
    found: list[str] = []
    # every backend's own group options (devices, image, placement, client ...) given a
    # value other than their default (`client: meshbed` is what a simulation runs anyway)
    found.extend(sorted({key for g in topo.groups for key, v in g.options.items()
                         if v and v != _option_default(g.backend, key)}))
    if topo.inventory is not None:
        found.append("inventory")
    if any(g.resources.cpus or g.resources.memory_bytes for g in topo.groups):
        found.append("resources")
    if topo.monitoring:
        found.append("monitoring")
    if not found:
        return None
    return f"note: simulate ignores {', '.join(found)} (only a real backend uses them)"


def memory_estimate(topo: Topology) -> int:
    """Bytes the simulation of ``topo`` is expected to need at its peak."""
    n = len(topo.nodes)
    cfg = core_config(topo)
    total = BASE_BYTES + n * (NODE_BYTES + (LARGE_NODE_BYTES if n > LARGE_SWARM else 0))
    for c in topo.contents:
        pieces = -(-(c.size or 0) // c.chunk_size)
        holders = len(set(topo.fetchers(c.name)) | set(c.seeders)) if n <= 5000 else n
        sides = min(holders - 1, cfg.max_peers + SIDES_SLACK)
        known = min(holders - 1, cfg.max_known)
        total += holders * (pieces * PIECE_BYTES + sides * (CONN_SIDE_BYTES + pieces // 8) + known * KNOWN_BYTES)
    return total


def available_memory() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(topo: Topology) -> int:
    """The estimate; InputError when it exceeds what this machine has free."""
    need = memory_estimate(topo)
    have = available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        raise InputError(
            f"simulating {len(topo.nodes)} nodes needs about {format_size(need)}; this machine has "
            f"{format_size(have)} available (a simulation may use {int(MEMORY_SHARE * 100)} % of it): "
            "use fewer nodes, fewer pieces or a bigger machine",
            topo.source,
        )
    return need
