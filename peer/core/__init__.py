"""The agent's swarm logic without I/O or clock (see docs/engine-core.md)."""

from peer.core.actions import (
    Action,
    Ban,
    Broadcast,
    Close,
    Completed,
    Dial,
    PieceTime,
    Rejected,
    Send,
    Serve,
    Timer,
    Verify,
)
from peer.core.bans import MAX_VIOLATIONS, BanList
from peer.core.blame import Blame
from peer.core.errors import ProtocolError
from peer.core.peering import KnownPeer
from peer.core.peerstate import PeerState
from peer.core.swarm import CoreConfig, SwarmCore

__all__ = [
    "Action", "Ban", "BanList", "Blame", "Broadcast", "Close", "Completed", "CoreConfig", "Dial", "KnownPeer",
    "MAX_VIOLATIONS", "PeerState", "PieceTime", "ProtocolError", "Rejected", "Send", "Serve",
    "SwarmCore", "Timer", "Verify",
]
