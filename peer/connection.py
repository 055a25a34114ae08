"""One peer connection after the handshake: reads and checks messages, serves requests.

Swarm decisions (what to request, whom to unchoke, what a block means for the piece) belong
to :class:`peer.torrent.Torrent`; this module speaks the protocol and guards against
hostile input: every violation raises :class:`ProtocolError` and ends the connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Optional

from peer import extensions as ext
from peer import wire
from peer.choker import RateMeter
from peer.wire import BLOCK, MAX_BLOCK, MAX_FRAME, DecodeError

if TYPE_CHECKING:
    from peer.engine import Agent
    from peer.torrent import Torrent

log = logging.getLogger("peer")

MAX_QUEUED_REQUESTS = 256  # requests a peer may have waiting with us; more = flood
MAX_SEND_BACKLOG = 16 << 20  # bytes queued toward a peer that does not read
SEGMENT = 64 * 1024  # upload granularity under a rate cap, so connections interleave
_LEN = struct.Struct(">I")
_II = struct.Struct(">II")
CLIENT = "meshbed/0.1"


class ProtocolError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class PeerConnection:
    def __init__(
        self, agent: Agent, torrent: Torrent, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, hs: wire.Handshake, *, outgoing: bool,
        dial_addr: Optional[tuple[str, int]] = None,
    ) -> None:
        self.agent = agent
        self.torrent = torrent
        self.reader = reader
        self.writer = writer
        peername = writer.get_extra_info("peername") or ("?", 0)
        self.ip: str = str(peername[0])
        self.port: int = int(peername[1])
        self.outgoing = outgoing
        self.listen_port: Optional[int] = dial_addr[1] if dial_addr else None
        self.peer_id = hs.peer_id
        self.fast = hs.supports_fast
        self.extended = hs.supports_extensions
        self.ext_ids: dict[str, int] = {}
        self.meshbed = False
        self.node: Optional[str] = None
        self.block = BLOCK  # block size we request with
        self.max_request = BLOCK  # largest request we serve to it
        n = torrent.meta.num_pieces
        self.bits = wire.Bitfield(n)
        self.is_seed = False
        self.useful = 0  # pieces it has that we lack
        self.rejected_pieces: set[int] = set()
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        now = time.monotonic()
        self.connected_at = now
        self.choke_since = now
        self.last_recv = now
        self.last_sent = now
        self.last_block = now
        self.choked_at = now  # when the peer last choked us
        self.rate_at_choke = 0.0  # our download rate from it then
        self.snubbed = False
        self.outstanding: dict[tuple[int, int, int], float] = {}
        self.out_bytes = 0
        self.busy_pieces: dict[int, int] = {}
        self.queue: deque[tuple[int, int, int]] = deque()
        self._queue_event = asyncio.Event()
        self.rate_from = RateMeter()
        self.rate_to = RateMeter()
        self.pex_sent: set[tuple[str, int]] = set()
        self.next_pex = now + 1.0
        self.pex_round = 0
        self.pex_greeted = False
        self.closed = False
        self.registered = False
        self.silent = agent.hostile == "stall"  # test mode: handshake, then never a word

    # ------------------------------------------------------------------ identity
    @property
    def listen_addr(self) -> Optional[tuple[str, int]]:
        return (self.ip, self.listen_port) if self.listen_port else None

    @property
    def label(self) -> str:
        """bytes_from/bytes_to key: meshbed node name, else ip:port."""
        if self.node:
            return self.node
        return f"{self.ip}:{self.listen_port or self.port}"

    def __repr__(self) -> str:
        return f"<peer {self.label} {self.torrent.meta.name}>"

    # ------------------------------------------------------------------ sending
    def send(self, msg: wire.Message) -> None:
        if not self.closed and not self.silent:
            self.writer.write(wire.encode(msg))
            self.last_sent = time.monotonic()
            self._check_backlog()

    def send_frames(self, frames: list[bytes]) -> None:
        if not self.closed and frames and not self.silent:
            self.writer.write(b"".join(frames))
            self.last_sent = time.monotonic()
            self._check_backlog()

    def _check_backlog(self) -> None:
        # Control messages are written without waiting; a peer that sends (e.g. requests
        # we reject) but never reads would make them pile up in memory.
        if self.writer.transport.get_write_buffer_size() > MAX_SEND_BACKLOG:
            self.agent.protocol_error("not_reading", self, "send backlog over limit")
            self.close(abort=True)

    def send_initial(self) -> None:
        t = self.torrent
        hostile = self.agent.hostile
        n = t.meta.num_pieces
        have = t.picker.have_count
        if hostile == "lie":
            have = n
        if self.fast and have == n:
            self.send(wire.HaveAll())
        elif self.fast and have == 0:
            self.send(wire.HaveNone())
        elif have:
            bits = wire.Bitfield.full(n) if hostile == "lie" else t.store.bitfield
            self.send(bits)
        if self.extended:
            hs = ext.local_handshake(
                port=self.agent.wire_port, client=CLIENT, reqq=MAX_QUEUED_REQUESTS,
                node=self.agent.node, mesh=self.agent.mesh, block=MAX_BLOCK,
            )
            if not t.pex:
                hs = ext.ExtHandshake(
                    m={ext.MESHBED: ext.MESHBED_ID}, port=hs.port, client=hs.client,
                    reqq=hs.reqq, meshbed=hs.meshbed,
                )
            self.send(wire.Extended(0, ext.encode_ext_handshake(hs)))
        if hostile == "malformed":
            # an oversized frame then garbage: the other side must just disconnect
            self.writer.write(_LEN.pack(MAX_FRAME + 1) + os.urandom(64))

    def set_choking(self, choke: bool) -> None:
        if choke == self.am_choking or self.closed:
            return
        self.am_choking = choke
        self.choke_since = time.monotonic()
        if choke:
            self.send(wire.Choke())
            if self.fast:
                self.send_frames([wire.encode(wire.Reject(*r)) for r in self.queue])
            self.queue.clear()
        else:
            self.send(wire.Unchoke())

    def set_interested(self, interested: bool) -> None:
        if interested != self.am_interested:
            self.am_interested = interested
            self.send(wire.Interested() if interested else wire.NotInterested())

    def cancel(self, key: tuple[int, int, int]) -> None:
        """Withdraw one of our requests (end game duplicate, snub)."""
        if self.outstanding.pop(key, None) is not None:
            self._forget(key)
            self.send(wire.Cancel(*key))

    def _forget(self, key: tuple[int, int, int]) -> None:
        self.out_bytes -= key[2]
        left = self.busy_pieces.get(key[0], 0) - 1
        if left > 0:
            self.busy_pieces[key[0]] = left
        else:
            self.busy_pieces.pop(key[0], None)

    def take_request(self, key: tuple[int, int, int]) -> bool:
        """Our request ``key`` was answered; False when it was not outstanding."""
        if self.outstanding.pop(key, None) is None:
            return False
        self._forget(key)
        return True

    def cancel_older_than(self, when: float) -> list[tuple[int, int, int]]:
        """Cancel our requests sent before ``when``; return their keys (to release)."""
        keys = [key for key, sent in self.outstanding.items() if sent <= when]
        for key in keys:
            self.cancel(key)
        return keys

    def drop_requests(self) -> list[tuple[int, int, int]]:
        keys = list(self.outstanding)
        self.outstanding.clear()
        self.busy_pieces.clear()
        self.out_bytes = 0
        return keys

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue_event.set()
        transport = self.writer.transport
        if abort:
            transport.abort()
        else:
            transport.close()

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        uploader = asyncio.ensure_future(self._upload_loop())
        uploader.add_done_callback(self._upload_ended)
        reason: Optional[str] = None
        try:
            if not self.torrent.attach(self):
                return
            self.send_initial()
            await self._read_loop()
        except (ProtocolError, DecodeError) as e:
            reason = e.reason
            self.agent.protocol_error(e.reason, self, str(e))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except Exception:  # a bug must cost one connection, never the agent
            reason = "internal_error"
            log.exception("%s: connection failed", self.label)
        finally:
            self.closed = True
            uploader.cancel()
            self.torrent.detach(self)
            if reason:
                self.writer.transport.abort()
            else:
                self.writer.transport.close()

    def _upload_ended(self, task: asyncio.Future[None]) -> None:
        # A dead uploader must not leave a connection that reads requests but never answers
        # them (the other side would wait for ever): close it, the dialer reconnects.
        if task.cancelled() or self.closed:
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, (ConnectionError, OSError)):
            log.error("%s: upload failed: %r", self.label, exc)
        self.close(abort=True)

    async def _read_loop(self) -> None:
        readexactly = self.reader.readexactly
        link = self.agent.link
        link.watch(self.reader)  # added latency counts from each byte's real arrival
        agent = self.agent
        torrent = self.torrent
        unpack_len = _LEN.unpack
        while not self.closed:
            (n,) = unpack_len(await readexactly(4))
            if n > MAX_FRAME:
                raise ProtocolError("frame_too_large", str(n))
            body = await readexactly(n) if n else b""
            await link.recv_gate(n + 4)
            self.last_recv = time.monotonic()
            agent.rate_down.add(n + 4)
            if not n:
                continue
            if body[0] == wire.PIECE and n > 9:
                index, begin = _II.unpack_from(body, 1)
                torrent.on_block(self, index, begin, memoryview(body)[9:])
            else:
                self._dispatch(wire.decode(body))

    def _dispatch(self, msg: wire.Message) -> None:
        t = self.torrent
        kind = type(msg)
        if kind is wire.Request:
            self._on_request(msg)  # type: ignore[arg-type]
        elif kind is wire.Have:
            t.on_have(self, self._index(msg.index))  # type: ignore[union-attr]
        elif kind is wire.Unchoke:
            self.peer_choking = False
            self.snubbed = False  # a fresh turn: it chose to serve us again
            self.rejected_pieces.clear()
            t.on_unchoke(self)
        elif kind is wire.Choke:
            self.peer_choking = True
            self.choked_at = time.monotonic()
            self.rate_at_choke = self.rate_from.rate
            if not self.fast:  # with BEP 6 the peer rejects what it will not send
                t.release_all(self)
        elif kind is wire.Interested:
            self.peer_interested = True
            t.on_interest(self)
        elif kind is wire.NotInterested:
            self.peer_interested = False
            t.on_interest(self)
        elif kind is wire.Cancel:
            key = (msg.index, msg.begin, msg.length)  # type: ignore[union-attr]
            try:
                self.queue.remove(key)
            except ValueError:
                pass
        elif kind is wire.Bitfield:
            # BEP 3 wants it first, but real clients (aria2) send HAVE_NONE, allowed-fast
            # sets, then one or more bitfields: a later one replaces the earlier state.
            bits = wire.Bitfield.from_bytes(t.meta.num_pieces, msg.to_bytes())  # type: ignore[union-attr]
            t.on_bitfield(self, bits)
        elif kind is wire.HaveAll or kind is wire.HaveNone:
            if not self.fast:
                raise ProtocolError("fast_not_negotiated")
            if kind is wire.HaveAll:
                t.on_bitfield(self, wire.Bitfield.full(t.meta.num_pieces))
        elif kind is wire.Reject:
            if not self.fast:
                raise ProtocolError("fast_not_negotiated")
            key = (msg.index, msg.begin, msg.length)  # type: ignore[union-attr]
            if self.take_request(key):
                if not self.peer_choking:  # not explained by a choke: it will not serve it
                    self.rejected_pieces.add(key[0])
                t.picker.release(*key)
                t.refill_soon()
        elif kind is wire.Extended:
            self._on_extended(msg)  # type: ignore[arg-type]
        elif kind is wire.Suggest or kind is wire.AllowedFast:
            self._index(msg.index)  # type: ignore[union-attr]
        elif kind is wire.Piece:  # short piece (no block) or via decode
            raise ProtocolError("bad_block", "empty block")
        # KeepAlive, Port: nothing to do

    def _index(self, i: int) -> int:
        if not 0 <= i < self.torrent.meta.num_pieces:
            raise ProtocolError("bad_index", str(i))
        return i

    def _on_request(self, msg: wire.Request) -> None:
        t = self.torrent
        meta = t.meta
        index = self._index(msg.index)
        if msg.length > self.max_request:
            raise ProtocolError("request_too_large", str(msg.length))
        if msg.length <= 0 or msg.begin < 0 or msg.begin + msg.length > meta.piece_size(index):
            raise ProtocolError("bad_request", f"{index}:{msg.begin}+{msg.length}")
        if len(self.queue) >= MAX_QUEUED_REQUESTS:
            raise ProtocolError("request_flood", str(len(self.queue)))
        key = (index, msg.begin, msg.length)
        hostile = self.agent.hostile
        if hostile == "stall":
            return
        lying = hostile == "lie" and not t.picker.has(index)
        if self.am_choking or not (t.picker.has(index) or lying):
            if self.fast:
                self.send(wire.Reject(*key))
            return
        self.queue.append(key)
        self._queue_event.set()

    def _on_extended(self, msg: wire.Extended) -> None:
        if msg.ext_id == 0:
            h = ext.decode_ext_handshake(msg.payload)
            self.ext_ids = {k: v for k, v in h.m.items() if v}
            if h.port and not self.listen_port:
                self.listen_port = h.port
            if h.meshbed is not None:
                self.meshbed = True
                node = h.meshbed.get("node")
                self.node = str(node) if node else None
                their = h.meshbed.get("block")
                block = their if isinstance(their, int) else BLOCK
                self.block = max(BLOCK, min(MAX_BLOCK, block))
                self.max_request = MAX_BLOCK
            self.torrent.on_ext_handshake(self)
        elif msg.ext_id == ext.UT_PEX_ID:
            added, _dropped = ext.decode_pex(msg.payload)
            self.torrent.on_pex(self, added)
        # other extended ids (meshbed_v1 messages, unknown): ignored

    # ------------------------------------------------------------------ uploading
    async def _upload_loop(self) -> None:
        t = self.torrent
        while not self.closed:
            await self._queue_event.wait()
            self._queue_event.clear()
            while self.queue and not self.closed:
                index, begin, length = self.queue.popleft()
                data = await t.read_block(index, begin, length, self.agent.hostile)
                if self.closed:
                    return
                await self._send_piece(index, begin, data)
                t.on_uploaded(self, length)

    async def _send_piece(self, index: int, begin: int, data: bytes) -> None:
        link = self.agent.link
        writer = self.writer
        header = wire.piece_header(index, begin, len(data))
        total = len(header) + len(data)
        # Under a cap, reserve the link segment by segment (so connections interleave
        # fairly), then write the frame whole: other messages must never land inside it.
        for off in range(0, total, SEGMENT) if link.up_bps is not None else (0,):
            await link.send_gate(min(SEGMENT, total - off) if link.up_bps is not None else total)
            if self.closed:
                return
        writer.write(header)
        writer.write(data)
        await writer.drain()
        self.last_sent = time.monotonic()
        self.agent.rate_up.add(total)
