"""Swarm logic of one torrent: peers, requests, verification, choking, PEX, reconnects."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from peer import extensions as ext
from peer import wire
from peer.choker import Candidate, RateMeter, pick_optimistic, regular_unchokes
from peer.connection import PeerConnection, ProtocolError
from peer.metainfo import Metainfo
from peer.metrics import REJECT_REASONS, ContentSnapshot, copies_bucket
from peer.picker import P_HAVE, PiecePicker
from peer.scheduler import MAX_VERIFY_BACKLOG, RequestScheduler
from peer.storage import HashMismatch, PieceStore

if TYPE_CHECKING:
    from peer.engine import Agent

log = logging.getLogger("peer")

MAX_PEERS = 50  # connections per torrent we open or accept
MAX_DIALS = 8  # connection attempts in flight per torrent
MAX_KNOWN = 1000  # addresses remembered per torrent
KEEPALIVE_SECONDS = 60.0
IDLE_SECONDS = 120.0
PEX_INTERVALS = (1.0, 3.0, 10.0, 30.0)  # the first PEX soon after connecting, then every 30 s
MAX_BACKOFF = 60.0


@dataclass
class KnownPeer:
    addr: tuple[str, int]
    source: str  # "given" | "pex" | "incoming"
    fails: int = 0
    next_try: float = 0.0
    connected: bool = False


class Torrent:
    def __init__(
        self, agent: Agent, meta: Metainfo, store: PieceStore, *, kind: str, pex: bool,
        upload: bool, sha256: Optional[str], started_at: float,
    ) -> None:
        self.agent = agent
        self.meta = meta
        self.store = store
        self.kind = kind  # "share" | "fetch"
        self.pex = pex
        self.upload = upload
        self.sha256 = sha256
        self.picker = PiecePicker(
            meta.num_pieces, meta.piece_size, store.bitfield.iter_set(), rng=agent.rng
        )
        self.conns: dict[bytes, PeerConnection] = {}
        self.known: dict[tuple[str, int], KnownPeer] = {}
        self.dialing: set[tuple[str, int]] = set()
        self.bytes_from: dict[str, int] = {}
        self.bytes_to: dict[str, int] = {}
        self.downloaded = 0
        self.uploaded = 0
        self.redownloaded = 0  # bytes of pieces asked for although already verified
        self.wasted = 0  # bytes that added nothing: late end-game copies, unasked blocks
        self.resumed_pieces = store.have_count if kind == "fetch" else 0
        self.rejected: dict[str, int] = {}
        self.strikes: dict[str, int] = {}
        self.started_at = started_at
        self.completed_at: Optional[float] = None
        self.seconds: Optional[float] = None
        self.verified: Optional[bool] = None
        self.rate_up = RateMeter()
        self.rate_down = RateMeter()
        self.optimistic: Optional[PeerConnection] = None
        self.verify_backlog = 0
        self.sched = RequestScheduler(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_choke = 0.0
        self._next_optimistic = 0.0
        self.closing = False

    # ------------------------------------------------------------------ helpers
    @property
    def complete(self) -> bool:
        return self.picker.complete

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_peers(self, addrs: list[tuple[str, int]], source: str) -> int:
        added = 0
        for addr in addrs:
            if addr in self.known or len(self.known) >= MAX_KNOWN:
                continue
            if self.agent.is_self(addr):
                continue
            self.known[addr] = KnownPeer(addr, source)
            added += 1
        return added

    # ------------------------------------------------------------------ peers
    def attach(self, c: PeerConnection) -> bool:
        """Register a handshaken connection; False = refuse it."""
        if self.closing or self.agent.is_banned(c.ip, c.listen_port or c.port, None):
            return False
        if len(self.conns) >= MAX_PEERS + 10:
            return False
        old = self.conns.get(c.peer_id)
        if old is not None and not old.closed:
            # The same peer twice. Both ways at once: keep the one the smaller peer_id dialed
            # (both sides decide alike). The same way again: the old one is stale, replace it.
            keep_new = old.outgoing == c.outgoing or (self.agent.peer_id < c.peer_id) == c.outgoing
            if not keep_new:
                return False
            old.close()
            self.detach(old)
        self.conns[c.peer_id] = c
        c.registered = True
        if c.listen_addr is not None:
            self._mark_connected(c.listen_addr)
        return True

    def _mark_connected(self, addr: tuple[str, int]) -> None:
        kp = self.known.get(addr)
        if kp is None and len(self.known) < MAX_KNOWN:
            kp = self.known[addr] = KnownPeer(addr, "incoming")
        if kp is not None:
            kp.connected, kp.fails = True, 0

    def detach(self, c: PeerConnection) -> None:
        if not c.registered:
            return
        c.registered = False
        if self.conns.get(c.peer_id) is c:
            del self.conns[c.peer_id]
        for key in c.drop_requests():
            self.picker.release(*key)
        if c.is_seed:
            self.picker.seed_left()
        else:
            self.picker.peer_lost(c.bits.iter_set())
        if c.listen_addr is not None:
            kp = self.known.get(c.listen_addr)
            if kp is not None:
                kp.connected = False
                kp.next_try = time.monotonic() + 2.0
        if self.optimistic is c:
            self.optimistic = None
        if not c.am_choking and not self.closing:
            self._fill_slots()
        self.sched.fill_all()

    def on_ext_handshake(self, c: PeerConnection) -> None:
        if self.agent.is_banned(c.ip, c.listen_port, c.node) or self.agent.link.blocked(
            c.node, c.ip, c.listen_port
        ):
            c.close()
            return
        if c.listen_addr is not None:
            self._mark_connected(c.listen_addr)
        if self.pex and ext.UT_PEX in c.ext_ids and not c.pex_greeted:
            c.pex_greeted = True
            # tell a newcomer about the swarm at once: its upload is idle until it knows peers
            asyncio.get_running_loop().call_later(0.2, self._send_pex, c)

    def on_bitfield(self, c: PeerConnection, bits: wire.Bitfield) -> None:
        picker = self.picker
        if c.is_seed:  # a repeated bitfield replaces what the peer announced before
            picker.seed_left()
            c.is_seed = False
        else:
            picker.peer_lost(c.bits.iter_set())
        if bits.all():
            c.is_seed = True
            c.bits = bits
            picker.seed_joined()
            c.useful = picker.n - picker.have_count
            if self.complete:  # two seeds have nothing to trade
                c.close()
                return
        else:
            c.bits = bits
            picker.peer_bitfield(bits.iter_set())
            status = picker.status
            c.useful = sum(1 for i in bits.iter_set() if status[i] != P_HAVE)
        c.set_interested(c.useful > 0)

    def on_have(self, c: PeerConnection, i: int) -> None:
        if c.is_seed or not c.bits.set(i):
            return
        picker = self.picker
        if c.bits.all():
            picker.peer_lost(j for j in c.bits.iter_set() if j != i)
            picker.seed_joined()
            c.is_seed = True
        else:
            picker.peer_have(i)
        if not picker.has(i):
            c.useful += 1
            c.set_interested(True)
            self.fill(c)

    def on_interest(self, c: PeerConnection) -> None:
        if c.peer_interested:
            if c.am_choking and self.upload and self._unchoked_count() < self.agent.upload_slots + 1:
                c.set_choking(False)  # a free slot: no need to wait for the next round
        elif not c.am_choking:
            c.set_choking(True)
            self._fill_slots()

    def _unchoked_count(self) -> int:
        return sum(1 for c in self.conns.values() if not c.am_choking)

    def _fill_slots(self) -> None:
        """Give free upload slots to the interested peers choked the longest."""
        if not self.upload:
            return
        free = self.agent.upload_slots + 1 - self._unchoked_count()
        if free <= 0:
            return
        waiting = sorted(
            (c for c in self.conns.values() if c.am_choking and c.peer_interested and not c.closed),
            key=lambda c: c.choke_since,
        )
        for c in waiting[:free]:
            c.set_choking(False)

    def on_pex(self, c: PeerConnection, added: list[tuple[str, int]]) -> None:
        if self.pex and self.add_peers(added[:100], "pex"):
            self._dial(time.monotonic())

    # ------------------------------------------------------------------ downloading
    def fill(self, c: PeerConnection) -> None:
        self.sched.fill(c)

    def refill_soon(self) -> None:
        self.sched.refill_soon()

    def release_all(self, c: PeerConnection) -> None:
        self.sched.release_all(c)

    def on_unchoke(self, c: PeerConnection) -> None:
        self.sched.on_unchoke(c)

    def on_block(self, c: PeerConnection, index: int, begin: int, block: memoryview) -> None:
        meta = self.meta
        length = len(block)
        if index >= meta.num_pieces or begin + length > meta.piece_size(index):
            raise ProtocolError("bad_block", f"{index}:{begin}+{length}")
        key = (index, begin, length)
        asked = c.take_request(key)
        picker = self.picker
        c.rate_from.add(length)
        self.rate_down.add(length)
        label = c.label
        self.bytes_from[label] = self.bytes_from.get(label, 0) + length
        self.downloaded += length
        if asked:
            c.last_block = time.monotonic()
            c.snubbed = False
        if picker.wanted(index, begin, length):
            if picker.received(index, begin, block, c):
                self._complete_piece(index)
            if picker.endgame:
                for other in self.conns.values():
                    if other is not c and key in other.outstanding:
                        other.cancel(key)
                        picker.release(*key)
        elif asked and self.sched.requested[index] == 2 and picker.has(index):
            # we asked for a piece verified before the request: the resume guarantee broke
            self.redownloaded += length
        else:  # a copy that lost the end-game race, or came after our cancel
            self.wasted += length
        self.sched.fill(c)

    def _complete_piece(self, index: int) -> None:
        p = self.picker.take(index)
        self.verify_backlog += p.size
        self.spawn(self._verify(index, p.data(), p.contributors))

    async def _verify(self, index: int, data: Any, contributors: set[Any]) -> None:
        agent = self.agent
        try:
            await agent.run_io(self.store.write_piece, index, data)  # False: already held
            ok = True
        except HashMismatch:
            ok = False
        except (OSError, ValueError) as e:  # disk trouble: fetch the piece again
            log.warning("%s: cannot store piece %d: %s", self.meta.name, index, e)
            self.picker.piece_failed(index)
            self.sched.forget_piece(index)
            return
        finally:
            was = self.verify_backlog
            self.verify_backlog -= len(data)
            if was > MAX_VERIFY_BACKLOG >= self.verify_backlog and not self.closing:
                self.sched.fill_all()  # requesting was paused: resume
        if self.closing:
            return
        picker = self.picker
        if not ok:
            picker.piece_failed(index)
            self.sched.forget_piece(index)
            self._reject("hash_mismatch")
            for c in list(contributors):
                if isinstance(c, PeerConnection):
                    self._strike(c, sole=len(contributors) == 1)
            self.sched.fill_all()
            return
        picker.piece_passed(index)
        t0 = self.sched.piece_started.get(index)
        self.sched.forget_piece(index)
        if t0 is not None:
            agent.metrics.piece_fetch_duration.labels(self.meta.name).observe(
                time.monotonic() - t0
            )
        have = wire.encode(wire.Have(index))
        for c in list(self.conns.values()):
            if c.is_seed or index in c.bits:
                c.useful -= 1
                if c.useful <= 0:
                    c.set_interested(False)
            else:
                c.send_frames([have])
        if picker.complete:
            await self._on_complete()

    def _reject(self, reason: str) -> None:
        if reason not in REJECT_REASONS:  # a new reason must be listed (metrics init)
            log.error("rejected-piece reason %r missing from REJECT_REASONS", reason)
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.agent.metrics.rejected_pieces.labels(reason).inc()

    def _strike(self, c: PeerConnection, sole: bool) -> None:
        label = c.label
        self.strikes[label] = self.strikes.get(label, 0) + 1
        if sole or self.strikes[label] >= 2:
            self.agent.ban(c, "hash_mismatch")

    async def _on_complete(self) -> None:
        self.completed_at = time.time()
        self.seconds = max(0.0, self.completed_at - self.started_at)
        log.info("%s: complete in %.2f s", self.meta.name, self.seconds)
        for c in list(self.conns.values()):
            if c.is_seed or not self.upload:  # nothing left to trade
                c.close()
        if self.sha256:
            digest = await self.agent.run_io(self.store.sha256)
            self.verified = digest == self.sha256
            if not self.verified:
                log.error("%s: whole-file SHA-256 mismatch", self.meta.name)
        self.agent.save_state(self)

    async def read_block(self, index: int, begin: int, length: int, hostile: Optional[str]) -> bytes:
        if hostile == "lie" and not self.picker.has(index):
            return os.urandom(length)
        data: bytes = await self.agent.run_io(self.store.read, index, begin, length)
        if hostile == "corrupt":
            flipped = bytearray(data)
            flipped[0] ^= 0xFF
            flipped[-1] ^= 0xFF
            return bytes(flipped)
        return data

    def on_uploaded(self, c: PeerConnection, length: int) -> None:
        c.rate_to.add(length)
        self.rate_up.add(length)
        self.uploaded += length
        label = c.label
        self.bytes_to[label] = self.bytes_to.get(label, 0) + length

    # ------------------------------------------------------------------ periodic
    def tick(self, now: float) -> None:
        """Once a second: rates, keepalives, idle/snub checks, choking, PEX, dialing."""
        self.rate_up.tick(now)
        self.rate_down.tick(now)
        keepalive = wire.encode(wire.KeepAlive())
        for c in list(self.conns.values()):
            c.rate_from.tick(now)
            c.rate_to.tick(now)
            if now - c.last_recv > IDLE_SECONDS:
                log.info("%s: %s idle for %.0f s, dropped", self.meta.name, c.label, IDLE_SECONDS)
                c.close()
                continue
            if now - c.last_sent > KEEPALIVE_SECONDS:
                c.send_frames([keepalive])
            self.sched.check(c, now)
            if self.pex and now >= c.next_pex:
                self._send_pex(c)
                c.pex_round += 1
                c.next_pex = now + PEX_INTERVALS[min(c.pex_round, len(PEX_INTERVALS) - 1)]
        self.sched.endgame_tick()
        if now >= self._next_choke:
            rotate = now >= self._next_optimistic
            self.rechoke(now, rotate)
            self._next_choke = now + 10.0
            if rotate:
                self._next_optimistic = now + 30.0
        self._dial(now)

    def rechoke(self, now: float, rotate_optimistic: bool) -> None:
        conns = [c for c in self.conns.values() if not c.closed]
        if not self.upload:
            for c in conns:
                c.set_choking(True)
            return
        cands = [
            Candidate(c, c.peer_interested, c.rate_from.rate, c.rate_to.rate, not c.am_choking,
                      c.choke_since, c.connected_at, len(c.bits) - c.bits.count())
            for c in conns
        ]
        regular = set(regular_unchokes(cands, self.agent.upload_slots, self.complete, now,
                                       policy=self.agent.choke_policy))
        opt = self.optimistic
        if rotate_optimistic or opt is None or opt.closed or not opt.peer_interested or opt in regular:
            self.optimistic = pick_optimistic(cands, regular, now, self.agent.rng)  # type: ignore[assignment]
        chosen = regular | ({self.optimistic} if self.optimistic else set())
        for c in conns:
            c.set_choking(c not in chosen)

    def _send_pex(self, c: PeerConnection) -> None:
        their_id = c.ext_ids.get(ext.UT_PEX)
        if not their_id or c.closed:
            return
        current = {
            o.listen_addr for o in self.conns.values()
            if o is not c and o.listen_addr is not None and not o.closed
        }
        current.discard(c.listen_addr)  # type: ignore[arg-type]
        added = [a for a in current if a not in c.pex_sent][:50]  # type: ignore[misc]
        dropped = [a for a in c.pex_sent if a not in current][:50]
        if not added and not dropped:
            return
        c.pex_sent.difference_update(dropped)
        c.pex_sent.update(added)  # type: ignore[arg-type]
        c.send(wire.Extended(their_id, ext.encode_pex(added, dropped)))  # type: ignore[arg-type]

    def dial_now(self) -> None:
        self._dial(time.monotonic())

    def _dial(self, now: float) -> None:
        if self.closing or (self.complete and not self.upload):
            return
        room = min(MAX_PEERS - len(self.conns), MAX_DIALS - len(self.dialing))
        if room <= 0:
            return
        agent = self.agent
        for kp in list(self.known.values()):
            if room <= 0:
                break
            if kp.connected or kp.addr in self.dialing or kp.next_try > now:
                continue
            if (not self.pex and kp.source == "pex") or agent.is_banned(*kp.addr, None):
                continue
            if agent.link.blocked(None, kp.addr[0], kp.addr[1]) or agent.is_self(kp.addr):
                continue
            if self.complete and kp.source != "given":
                continue  # a seed waits for leechers to come; it only re-dials given peers
            self.dialing.add(kp.addr)
            room -= 1
            self.spawn(self._connect(kp))

    async def _connect(self, kp: KnownPeer) -> None:
        try:
            ok = await self.agent.connect(self, kp.addr)
        finally:
            self.dialing.discard(kp.addr)
        if not ok:
            kp.fails += 1
            kp.next_try = time.monotonic() + min(MAX_BACKOFF, 2.0 ** kp.fails)

    # ------------------------------------------------------------------ reporting
    def rarest_copies(self) -> Optional[int]:
        if not self.conns and not self.picker.have_count:
            return None
        return self.picker.rarest_copies()

    def status(self) -> dict[str, Any]:
        meta = self.meta
        return {
            "name": meta.name,
            "size": meta.length,
            "piece_length": meta.piece_length,
            "pieces": meta.num_pieces,
            "have": self.picker.have_count,
            "complete": self.complete,
            "verified": self.verified,
            "sha256": self.sha256,
            "seeding": self.complete and self.upload,
            "upload": self.upload,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "seconds": self.seconds,
            "downloaded": self.downloaded,
            "uploaded": self.uploaded,
            "redownloaded": self.redownloaded,
            "wasted": self.wasted,
            "resumed_pieces": self.resumed_pieces,
            "bytes_from": dict(self.bytes_from),
            "bytes_to": dict(self.bytes_to),
            "rejected": dict(self.rejected),
            "peers": len(self.conns),
            "rarest_copies": self.rarest_copies(),
            "rate_up": round(self.rate_up.rate, 1),
            "rate_down": round(self.rate_down.rate, 1),
        }

    def snapshot(self) -> ContentSnapshot:
        replication: dict[str, int] = {}
        for n in self.picker.replication():
            b = copies_bucket(n)
            replication[b] = replication.get(b, 0) + 1
        return ContentSnapshot(
            content=self.meta.name, bytes_sent=self.uploaded, bytes_received=self.downloaded,
            pieces_held=self.picker.have_count, pieces_total=self.meta.num_pieces,
            connected_peers=len(self.conns), rarest_copies=self.rarest_copies(),
            completed_at=self.completed_at, replication=replication, wasted=self.wasted,
        )

    async def close(self) -> None:
        self.closing = True
        for c in list(self.conns.values()):
            c.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

