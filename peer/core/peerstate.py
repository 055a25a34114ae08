"""One connection as the core sees it: protocol state and request bookkeeping.

The core writes every field (through the methods below or directly from
:class:`peer.core.swarm.SwarmCore`); drivers only read them. ``key`` is the driver's own
handle for the connection (the asyncio agent stores its ``PeerConnection`` there).
"""

from __future__ import annotations

from typing import Any, Optional

from peer.choker import RateMeter
from peer.wire import BLOCK

Key = tuple[int, int, int]  # (index, begin, length) of a request


class PeerState:
    # slots in memory order: what every HAVE and verified piece reads first, side by side
    # (the simulator holds millions of these; one cache line instead of three per peer)
    __slots__ = (
        "pmask", "is_seed", "useful", "closed", "sent", "key", "am_interested", "peer_choking",
        "last_recv", "out_bytes", "rejected", "snubbed", "rate_from", "block",
        "peer_id", "ip", "port", "outgoing", "listen_port", "listen_addr", "fast",
        "extended", "ext_ids", "meshbed", "node", "max_request",
        "am_choking", "peer_interested",
        "connected_at", "choke_since", "last_sent", "last_block", "choked_at",
        "rate_at_choke", "outstanding", "busy_pieces", "queue",
        "rate_to", "pex_sent", "next_pex", "pex_round", "pex_greeted",
        "registered", "excess_requests", "meta_answers", "haves",
    )

    def __init__(
        self, num_pieces: int, now: float, *, peer_id: bytes, ip: str, port: int,
        outgoing: bool, listen_port: Optional[int] = None, fast: bool = True,
        extended: bool = True, block: int = BLOCK, key: Any = None,
    ) -> None:
        """``num_pieces`` is accepted for the callers' sake; what the peer has lives in
        ``pmask`` (bits given by the torrent's picker)."""
        self.key = key
        self.peer_id = peer_id
        self.ip = ip
        self.port = port
        self.outgoing = outgoing
        self.listen_port = listen_port
        # one shared tuple (PEX keeps many references to it): set with set_listen_port
        self.listen_addr: Optional[tuple[str, int]] = (ip, listen_port) if listen_port else None
        self.fast = fast
        self.extended = extended
        self.ext_ids: dict[str, int] = {}
        self.meshbed = False
        self.node: Optional[str] = None  # a name it proved (or any name, without identity)
        self.block = block  # block size we request with
        self.max_request = BLOCK  # largest request we serve to it
        self.pmask = 0  # the pieces it has, as the picker's bit mask (PiecePicker.mask_of)
        self.is_seed = False
        self.useful = 0  # pieces it has that we lack
        self.rejected = 0  # pieces it refused to serve while unchoking us (picker bit mask)
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.connected_at = now
        self.choke_since = now
        self.last_recv = now
        self.last_sent = now
        self.last_block = now
        self.choked_at = now  # when the peer last choked us
        self.rate_at_choke = 0.0  # our download rate from it then
        self.snubbed = False
        self.outstanding: dict[Key, float] = {}  # our requests -> when sent
        self.out_bytes = 0
        self.busy_pieces: dict[int, int] = {}  # piece -> our requests in it
        # its requests waiting for our upload (<= 256: a list is smaller than a deque)
        self.queue: list[Key] = []
        self.rate_from = RateMeter()
        self.rate_to = RateMeter()
        self.pex_sent = 0  # addresses told by PEX: a mask over Peering's address numbers
        self.next_pex = now + 1.0
        self.pex_round = 0
        self.pex_greeted = False
        self.sent = False  # something was sent since the last tick
        self.closed = False  # the core asked for (or learned of) the end of the connection
        self.registered = False
        self.excess_requests = 0  # its requests over our queue limit (rejected/dropped)
        self.meta_answers = 0  # ut_metadata requests it made (bounded)
        # pieces we got that it lacks, not told yet: it is interested in us already, so a
        # HAVE only adds a choice; they go with our next message to it or within a second
        self.haves: Optional[list[int]] = None

    def set_listen_port(self, port: int) -> None:
        self.listen_port = port
        self.listen_addr = (self.ip, port) if port else None

    @property
    def label(self) -> str:
        """bytes_from/bytes_to key: the node name it proved, else the address we dialed,
        else (incoming) its IP: never a claimed name nor an ephemeral port."""
        if self.node:
            return self.node
        return f"{self.ip}:{self.port}" if self.outgoing else self.ip

    def __repr__(self) -> str:
        return f"<peer {self.label}>"

    # ------------------------------------------------------------ our requests
    def add_request(self, key: Key, now: float) -> None:
        self.outstanding[key] = now
        self.out_bytes += key[2]
        busy = self.busy_pieces
        busy[key[0]] = busy.get(key[0], 0) + 1

    def take_request(self, key: Key) -> bool:
        """Request ``key`` ended (answered, rejected, cancelled); False if it was not ours."""
        if self.outstanding.pop(key, None) is None:
            return False
        self.out_bytes -= key[2]
        busy = self.busy_pieces
        left = busy.get(key[0], 0) - 1
        if left > 0:
            busy[key[0]] = left
        else:
            busy.pop(key[0], None)
        return True

    def requests_older_than(self, when: float) -> list[Key]:
        return [key for key, sent in self.outstanding.items() if sent <= when]

    def drop_requests(self) -> list[Key]:
        keys = list(self.outstanding)
        self.outstanding.clear()
        self.busy_pieces.clear()
        self.out_bytes = 0
        return keys

    # ------------------------------------------------------------ its requests
    def enqueue(self, key: Key) -> bool:
        """Queue a request it sent us; True when the queue was empty (wake the uploader)."""
        self.queue.append(key)
        return len(self.queue) == 1

    def unqueue(self, key: Key) -> None:
        """It cancelled ``key`` (not sent yet: forget it; already sent: nothing to do)."""
        try:
            self.queue.remove(key)
        except ValueError:
            pass

    def drain_queue(self) -> list[Key]:
        """Forget every queued request (we choke it); returns them (to reject)."""
        keys = list(self.queue)
        self.queue.clear()
        return keys

    def next_upload(self) -> Optional[Key]:
        return self.queue.pop(0) if self.queue else None
