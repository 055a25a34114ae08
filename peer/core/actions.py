"""What the core asks its driver to do. Each action is a small NamedTuple; the driver
takes them with ``SwarmCore.take_actions()`` after every event, in the order decided."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, NamedTuple, Optional, Tuple, Union

from peer import wire

if TYPE_CHECKING:
    from peer.core.peerstate import PeerState

Buffer = Union[bytes, bytearray, memoryview]


class Send(NamedTuple):
    """Write these messages to the peer (in order; may be joined with the next sends)."""
    peer: PeerState
    msgs: List[wire.Message]


class Broadcast(NamedTuple):
    """Write the same messages to each of these peers (a HAVE after a verified piece)."""
    peers: List[PeerState]
    msgs: List[wire.Message]


class Serve(NamedTuple):
    """The peer has requests queued with us: drain ``core.next_upload(peer)``."""
    peer: PeerState


class Close(NamedTuple):
    """End the connection; ``reason`` "" is an ordinary end, else a short label."""
    peer: PeerState
    reason: str


class Ban(NamedTuple):
    """The peer is banned (already recorded in the BanList): count it, abort the connection.
    ``new``: it was not banned before (a liar is only logged once)."""
    peer: PeerState
    reason: str
    new: bool = True


class Dial(NamedTuple):
    """Connect to ``addr``; report the end with ``core.dial_done(addr, ok, now)``."""
    addr: Tuple[str, int]


class Verify(NamedTuple):
    """Hash and store the piece (``data`` None with virtual payloads), then
    ``core.piece_verified(piece, ok, now)`` (or ``piece_lost`` on disk trouble)."""
    piece: int
    data: Optional[Buffer]


class Timer(NamedTuple):
    """Call ``core.timer(token, now)`` once ``at`` is reached (``at`` == now: right after the
    current burst of events)."""
    at: float
    token: Any


class Completed(NamedTuple):
    """Every piece is verified."""


class Rejected(NamedTuple):
    """A received piece was rejected (``reason`` is in metrics.REJECT_REASONS)."""
    reason: str


class PieceTime(NamedTuple):
    """A piece was verified ``seconds`` after its first request."""
    piece: int
    seconds: float


Action = Union[Send, Broadcast, Serve, Close, Ban, Dial, Verify, Timer, Completed, Rejected, PieceTime]
