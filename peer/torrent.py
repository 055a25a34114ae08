"""One torrent in the asyncio agent: drives its :class:`peer.core.SwarmCore` (the swarm
logic, pure) with connections, disk I/O, timers and metrics.

Every call into the core is followed by :meth:`Torrent.flush`, which carries out the
actions the core decided: writes to connections, dials, verification in the I/O pool,
timers on the event loop, metrics.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Optional

from peer import tracker
from peer.core import (
    Ban,
    Broadcast,
    Close,
    Completed,
    CoreConfig,
    Dial,
    KnownPeer,
    PeerState,
    PieceTime,
    Rejected,
    Send,
    Serve,
    SwarmCore,
    Timer,
    Verify,
)
from peer.core.actions import Buffer
from peer.metadata import MetadataServer
from peer.metainfo import Metainfo
from peer.metrics import REJECT_REASONS, ContentSnapshot
from peer.piececache import PieceCache, block_of
from peer.reporting import torrent_snapshot, torrent_status
from peer.storage import HashMismatch, InlineWrites, PieceStore, voluntary_switches

if TYPE_CHECKING:
    from peer.agent import Agent
    from peer.connection import PeerConnection
    from peer.picker import PiecePicker

log = logging.getLogger("peer")
# seconds the upload cache may go unused (no piece in, no block out) before it is let go
CACHE_IDLE = 30.0


class Torrent:
    def __init__(
        self, agent: Agent, meta: Metainfo, store: PieceStore, *, kind: str, pex: bool,
        upload: bool, sha256: Optional[str], started_at: float,
    ) -> None:
        self.agent = agent
        self.meta = meta
        self.store = store
        self.kind = kind  # "share" | "fetch"
        self.sha256 = sha256
        self.core: SwarmCore = agent.core_class(
            meta.num_pieces, meta.piece_length, meta.length, store.bitfield.iter_set(),
            rng=agent.rng, local_id=agent.peer_id,
            config=CoreConfig(upload_slots=agent.upload_slots, choke_policy=agent.choke_policy),
            bans=agent.bans, pex=pex, upload=upload, blocked=agent.link.blocked,
            is_self=agent.is_self,
            hello=functools.partial(agent.ext_hello, len(meta.info_bytes)),
            piece_size=meta.piece_size if meta.v2_only else None,
            identity=agent.identity(meta.info_hash), members_only=agent.access == "mesh",
        )
        self.core.metadata = MetadataServer(meta.info_bytes)  # BEP 9: peers with magnets
        self.resumed_pieces = store.have_count if kind == "fetch" else 0
        self.started_at = started_at
        self.completed_at: Optional[float] = None
        self.seconds: Optional[float] = None
        self.verified: Optional[bool] = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.announcer: Optional[tracker.Announcer] = None
        self._announce_task: Optional[asyncio.Task[None]] = None
        self._dry_since = 0.0  # when we last asked the tracker early (no peer left)
        self.cache = PieceCache()  # pieces served to peers without a trip to the I/O pool
        self.cache_used_at = 0.0  # monotonic: a piece last went in or a block out
        self.inline_writes = InlineWrites(enabled=not store.fsync)  # see _verify

    # ------------------------------------------------------------------ views of the core
    @property
    def picker(self) -> PiecePicker:
        return self.core.picker

    @property
    def conns(self) -> dict[bytes, PeerState]:
        return self.core.peers

    @property
    def known(self) -> dict[tuple[str, int], KnownPeer]:
        return self.core.known

    @known.setter
    def known(self, value: dict[tuple[str, int], KnownPeer]) -> None:
        self.core.peering.known = value

    @property
    def complete(self) -> bool:
        return self.core.complete

    @property
    def closing(self) -> bool:
        return self.core.closing

    @property
    def pex(self) -> bool:
        return self.core.pex

    @property
    def upload(self) -> bool:
        return self.core.upload

    def set_mode(self, pex: bool, upload: bool) -> None:
        self.core.pex, self.core.upload = pex, upload

    # ------------------------------------------------------------------ actions
    def flush(self) -> None:
        """Carry out what the core decided."""
        for act in self.core.take_actions():
            kind = type(act)
            if kind is Send:
                conn: PeerConnection = act.peer.key  # type: ignore[union-attr]
                conn.send(act.msgs)  # type: ignore[union-attr]
            elif kind is Broadcast:
                msgs = act.msgs  # type: ignore[union-attr]
                for peer in act.peers:  # type: ignore[union-attr]
                    peer.key.send(msgs)
            elif kind is Serve:
                act.peer.key.wake_uploader()  # type: ignore[union-attr]
            elif kind is Verify:
                self.spawn(self._verify(act.piece, act.data))  # type: ignore[union-attr]
            elif kind is Close:
                peer, reason = act.peer, act.reason  # type: ignore[union-attr]
                if reason in ("idle", "snubbed"):
                    log.info("%s: %s %s, dropped", self.meta.name, peer.label, reason)
                peer.key.close()
            elif kind is Ban:
                self.agent.count_ban(act.peer, act.reason, act.new)  # type: ignore[union-attr]
            elif kind is Dial:
                self.spawn(self._connect(act.addr))  # type: ignore[union-attr]
            elif kind is Timer:
                delay = max(0.0, act.at - time.monotonic())  # type: ignore[union-attr]
                asyncio.get_running_loop().call_later(delay, self._timer, act.token)  # type: ignore[union-attr]
            elif kind is Rejected:
                reason = act.reason  # type: ignore[union-attr]
                if reason not in REJECT_REASONS:  # a new reason must be listed (metrics init)
                    log.error("rejected-piece reason %r missing from REJECT_REASONS", reason)
                self.agent.metrics.rejected_pieces.labels(reason).inc()
            elif kind is PieceTime:
                self.agent.metrics.piece_fetch_duration.labels(self.meta.name).observe(
                    act.seconds)  # type: ignore[union-attr]
            elif kind is Completed:
                self.spawn(self.on_complete())

    def _timer(self, token: Any) -> None:
        if not self.core.closing:
            self.core.timer(token, time.monotonic())
            self.flush()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ peers
    def add_peers(self, addrs: list[tuple[str, int]], source: str) -> int:
        return self.core.peering.add(addrs, source)

    def attach(self, c: PeerConnection) -> bool:
        """Register a handshaken connection (its first messages are sent); False = refuse."""
        ok = self.core.peer_connected(c.state, time.monotonic())
        self.flush()
        return ok

    def detach(self, c: PeerConnection) -> None:
        self.core.peer_closed(c.state, time.monotonic())
        self.flush()

    def set_choking(self, peer: PeerState, choke: bool) -> None:
        self.core.choking.set_choking(peer, choke, time.monotonic())
        self.flush()

    def link_changed(self) -> None:
        self.core.link_changed(time.monotonic())
        self.flush()

    def dial_now(self) -> None:
        self.core.peering.dial(time.monotonic())
        self.flush()

    async def _connect(self, addr: tuple[str, int]) -> None:
        ok = False
        try:
            ok = await self.agent.connect(self, addr)
        finally:
            if not self.core.closing:
                self.core.dial_done(addr, ok, time.monotonic())
                self.flush()

    # ------------------------------------------------------------------ trackers
    def start_announcing(self) -> None:
        """Announce to the torrent's trackers (BEP 3/15, tiers BEP 12) until closed."""
        if not self.meta.trackers or self.announcer is not None or self.agent.wire_port == 0:
            return
        self.announcer = tracker.Announcer(
            self.meta.trackers, self.meta.info_hash, self.agent.peer_id, self.agent.wire_port,
            stats=self._transfer_stats, on_peers=self._tracker_peers,
            rng=self.agent.sysrng)
        self._announce_task = asyncio.ensure_future(self.announcer.run())
        self._dry_since = time.monotonic()

    def _transfer_stats(self) -> tracker.TransferStats:
        core = self.core
        held = sum(core.piece_size(i) for i in self.store.bitfield.iter_set())
        left = 0 if core.complete else max(0, self.meta.total_size - held)  # pads: about
        return tracker.TransferStats(core.uploaded, core.downloaded, left)

    def _tracker_peers(self, addrs: list[tuple[str, int]]) -> None:
        if not self.core.closing and self.add_peers(addrs, "tracker"):
            self.dial_now()

    def _announce_if_dry(self, now: float) -> None:
        """No peer left while downloading: ask the tracker early (at most every 30 s or
        its min interval), as it may know newcomers."""
        ann = self.announcer
        if ann is None or self.core.complete or self.core.peers or self.core.peering.dialing:
            return
        wait = max(tracker.MIN_INTERVAL, (ann.last.min_interval or 0.0) if ann.last else 0.0)
        if now - self._dry_since >= wait:
            self._dry_since = now
            ann.announce_now()

    async def _stop_announcing(self) -> None:
        ann, task = self.announcer, self._announce_task
        if ann is None or task is None:
            return
        await ann.stop(timeout=2.0)  # "stopped", bounded: a dead tracker must not hold us
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------------ disk
    async def _verify(self, index: int, data: Optional[Buffer]) -> None:
        agent = self.agent
        try:
            if data is not None and self.inline_writes.choose(len(data), time.monotonic()):
                self._write_inline(index, data)
            else:
                await agent.run_io(self.store.write_piece, index, data)  # False: already held
            ok = True
            if data is not None and self.cache.fits(len(data)):  # asked for next, usually
                self.cache.put(index, bytes(data))
                self.cache_used_at = time.monotonic()
        except HashMismatch:
            ok = False
        except (OSError, ValueError) as e:  # disk trouble: fetch the piece again
            log.warning("%s: cannot store piece %d: %s", self.meta.name, index, e)
            self.core.piece_lost(index, time.monotonic())
            self.flush()
            return
        self.core.piece_verified(index, ok, time.monotonic())
        self.flush()

    def _write_inline(self, index: int, data: Buffer) -> None:
        began, waits = time.monotonic(), voluntary_switches()
        try:
            self.store.write_piece(index, data)
        finally:
            took, now_waits = time.monotonic() - began, voluntary_switches()
            waited = waits is None or now_waits is None or now_waits > waits
            if self.inline_writes.wrote(took, waited):
                log.info("%s: storing a piece waited %.0f ms: storing in the I/O thread from now on",
                         self.meta.name, took * 1000)

    async def read_block(self, index: int, begin: int, length: int) -> bytes:
        cache = self.cache
        self.cache_used_at = time.monotonic()
        piece = cache.get(index)
        if piece is None:
            size = self.meta.piece_size(index)
            whole = cache.fits(size)  # the whole piece: its other blocks are usually next
            start, count = (0, size) if whole else (begin, length)
            # from the page cache right here, else a trip to the I/O thread (it may wait)
            data = self.store.read_cached(index, start, count)
            if data is None:
                data = await self.agent.run_io(self.store.read, index, start, count)
            if not whole:
                return data
            piece = data
            cache.put(index, piece)
        return block_of(piece, index, begin, length)

    async def on_complete(self) -> None:
        self.completed_at = time.time()
        self.seconds = max(0.0, self.completed_at - self.started_at)
        log.info("%s: complete in %.2f s", self.meta.name, self.seconds)
        if self.announcer is not None:
            self.announcer.completed()
        if self.sha256:
            digest = await self.agent.run_background(self.store.sha256)
            self.verified = digest == self.sha256
            if not self.verified:
                log.error("%s: whole-file SHA-256 mismatch", self.meta.name)
        self.agent.save_state(self)

    def resume_complete(self) -> None:
        """Loaded with every piece: close seeds, record the completion."""
        self.core.complete_on_resume()
        self.flush()

    # ------------------------------------------------------------------ periodic
    def tick(self, now: float) -> None:
        self.core.tick(now)
        self.flush()
        for peer in list(self.core.peers.values()):
            peer.key.check_upload(now)  # type: ignore[union-attr]
        self._announce_if_dry(now)
        if self.cache.size and now - self.cache_used_at > CACHE_IDLE:  # a seed nobody asks
            self.cache.clear()

    async def close(self) -> None:
        self.core.close()
        self.flush()
        self.cache.clear()
        await self._stop_announcing()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        return torrent_status(self)

    def snapshot(self) -> ContentSnapshot:
        return torrent_snapshot(self)
