"""Who gets one of a torrent's connection slots (pure): members only, idle eviction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from peer.core.peerstate import PeerState
    from peer.core.swarm import SwarmCore

MAX_UNPROVEN_PER_IP = 16  # connections per torrent from one IP without a proven name
EVICT_GRACE = 10.0  # seconds a newcomer has to show interest before it may be evicted
RACE_WINDOW = 5.0  # two connections both ways within this are a simultaneous dial
STALE_SECONDS = 30.0  # a connection silent this long may be replaced by a reconnect


def vouched_addr(c: PeerState) -> Optional[tuple[str, int]]:
    """``c``'s listen address if we can believe it: we dialed it, or it proved its name
    (the proof covers the port). An unproven claim is no address of ours to mark."""
    return c.listen_addr if c.outgoing or c.node else None


def admitted(core: SwarmCore, c: PeerState) -> bool:
    """May ``c`` use this torrent? (``members_only``: a proven member, or an address we
    were given.)"""
    if not core.members_only or c.node:
        return True
    known = core.peering.known
    if c.outgoing:
        kp = known.get((c.ip, c.port))
        return kp is not None and kp.source == "given"
    return any(a[0] == c.ip and kp.source == "given" for a, kp in known.items())


def evict_idle(core: SwarmCore, now: float) -> bool:
    """Make room: close one peer neither interested nor interesting (unproven first, then
    the longest without a block); False if every peer is busy or new."""
    best: Optional[PeerState] = None
    for o in core.peers.values():
        if o.closed or o.peer_interested or o.am_interested or now - o.connected_at < EVICT_GRACE:
            continue
        if best is None or (o.node is None, -o.last_block) > (best.node is None, -best.last_block):
            best = o
    if best is None:
        return False
    core.close_peer(best, "evicted")
    core.peer_closed(best, now)
    return True
