"""One peer connection after the handshake: the socket side of a :class:`PeerState`.

Bytes read go through the pure ``wire.FrameDecoder``; each decoded message goes to the
torrent's :class:`peer.core.SwarmCore` (its dispatch table), whose actions the torrent
carries out. What is left here is I/O: writing frames, the upload loop, the send backlog
guard. Swarm decisions live in peer/core/.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from peer import wire
from peer.core import PeerState, ProtocolError
from peer.directread import READ_BUFFER, take_over
from peer.wire import DecodeError

if TYPE_CHECKING:
    from peer.agent import Agent
    from peer.torrent import Torrent

__all__ = ["PeerConnection", "ProtocolError"]

log = logging.getLogger("peer")

MAX_SEND_BACKLOG = 8 << 20  # bytes queued toward a peer that does not read
NOT_READING = 4 << 20  # more queued than an honest upload ever holds (high water + a block)
SEND_BUDGET = 16 << 20  # the agent's send queues together, beyond which non-readers are cut
UPLOAD_STALL = 60.0  # seconds a block may wait for the peer to read before we give up
SEGMENT = 64 * 1024  # upload granularity under a rate cap, so connections interleave
# Piece data queued ahead of a connection's control messages (requests, HAVEs, cancels,
# chokes), which wait behind it: about one block (blocks are ~50 ms of the peer's rate)
# in our buffer, and at least this much unsent in the kernel's (TCP_NOTSENT_LOWAT; left
# alone the kernel holds up to 4 MB: seconds of a slow link).
MIN_UNSENT = 16 * 1024
# SO_RCVLOWAT inside a frame: only when more than a segment is missing, and at most this
# (the kernel sizes the receive buffer to twice the mark)
MIN_RCVLOWAT = 1500
MAX_RCVLOWAT = 64 * 1024
READ_CHUNK = READ_BUFFER  # bytes per read, either path: the unit of the downlink gate and of processing
CLIENT = "meshbed/0.1"


class EncryptingWriter:
    """A StreamWriter whose every written byte goes through ``encrypt`` first (MSE RC4);
    everything else is the wrapped writer's."""

    def __init__(self, writer: asyncio.StreamWriter, encrypt: Callable[[bytes], bytes]) -> None:
        self._writer = writer
        self._encrypt = encrypt

    def write(self, data: bytes) -> None:
        self._writer.write(self._encrypt(bytes(data)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class PeerConnection:
    def __init__(
        self, agent: Agent, torrent: Torrent, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, hs: wire.Handshake, *, outgoing: bool,
        dial_addr: Optional[tuple[str, int]] = None, initial: bytes = b"",
        crypto: Optional[tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = None,
    ) -> None:
        """``initial``: bytes read after the peer's handshake (already decrypted);
        ``crypto``: (encrypt, decrypt) of an MSE RC4 connection, None for plaintext."""
        self.agent = agent
        self.torrent = torrent
        self.reader = reader
        self.writer = writer
        self._initial = initial
        self._decrypt: Optional[Callable[[bytes], bytes]] = None
        if crypto is not None:
            self.writer = EncryptingWriter(writer, crypto[0])  # type: ignore[assignment]
            self._decrypt = crypto[1]
        peername = writer.get_extra_info("peername") or ("?", 0)
        self.state = PeerState(
            torrent.meta.num_pieces, time.monotonic(), peer_id=hs.peer_id,
            ip=str(peername[0]), port=int(peername[1]), outgoing=outgoing,
            listen_port=dial_addr[1] if dial_addr else None, fast=hs.supports_fast,
            extended=hs.supports_extensions, key=self,
        )
        self._queue_event = asyncio.Event()
        self.closed = False
        self._unsent_limit = 0  # the TCP_NOTSENT_LOWAT set on the socket (0: not yet)
        self._high = 0  # the write buffer's high-water mark set for blocks (0: not yet)
        self._rcvlowat = 1  # SO_RCVLOWAT on the socket (-1: cannot be set)
        self._decoder = wire.FrameDecoder()
        self.draining_since = 0.0  # monotonic: a block waits for the peer to read (0: none)

    @property
    def label(self) -> str:
        return self.state.label

    def __repr__(self) -> str:
        return f"<peer {self.label} {self.torrent.meta.name}>"

    # ------------------------------------------------------------------ sending
    def send(self, msgs: list[wire.Message]) -> None:
        if self.closed:
            return
        encode = wire.encode
        self.writer.write(encode(msgs[0]) if len(msgs) == 1 else b"".join(map(encode, msgs)))
        self._check_backlog()

    def _check_backlog(self) -> None:
        # Control messages are written without waiting; a peer that sends (e.g. requests
        # we reject) but never reads would make them pile up in memory.
        size = self.writer.transport.get_write_buffer_size()
        if size > MAX_SEND_BACKLOG:
            self.agent.protocol_error("not_reading", self, "send backlog over limit")
            self.close(abort=True)
        elif size > NOT_READING:
            self.agent.trim_send_queues()

    def after_initial(self) -> None:
        """Hook right after the first messages (hostile test modes)."""

    def wake_uploader(self) -> None:
        self._queue_event.set()

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
        t = self.torrent
        try:
            if not t.attach(self):
                return
            self.after_initial()
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
            t.detach(self)
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
        link = self.agent.link
        decrypt = self._decrypt
        if self._initial:  # bytes that came with the handshake (decrypted)
            pending, self._initial = self._initial, b""
            await link.recv_gate(len(pending))
            self._handle(pending)
        # Links the agent does not emulate: read in the transport's callbacks (cheaper)
        handle = self._handle if decrypt is None else self._handle_encrypted
        taken = take_over(self.reader, self.writer.transport, handle,
                          lambda: link.passes_through)
        if taken is not None:
            direct, leftover = taken
            if leftover:
                handle(leftover)
            if not await direct.ended:  # False: the connection ended
                return
        # the stream: each read waits for the link's gates (rate, latency, loss)
        read = self.reader.read
        link.watch(self.reader)  # added latency counts from each byte's real arrival
        while not self.closed:
            data = await read(READ_CHUNK)
            if not data:
                return
            if decrypt is not None:
                data = decrypt(data)
            await link.recv_gate(len(data))
            self._handle(data)

    def _handle_encrypted(self, raw: bytes) -> None:
        assert self._decrypt is not None  # only handed out with it
        self._handle(self._decrypt(raw))

    def _handle(self, data: bytes) -> None:
        """Decode and handle bytes read (decrypted), then carry out what the core decided."""
        now = time.monotonic()
        self.agent.rate_down.add(len(data))
        state, decoder = self.state, self._decoder
        core = self.torrent.core
        try:
            for msg in decoder.feed(data):
                if type(msg) is wire.Piece and msg.block:  # type: ignore[union-attr]
                    blk = msg.block  # type: ignore[union-attr]
                    core.block(state, msg.index, msg.begin, len(blk), blk, now)  # type: ignore[union-attr]
                else:
                    core.message(state, msg, now)
        finally:
            self.torrent.flush()  # what was decided before an error still happens
        self._wake_when(decoder.missing)

    def _wake_when(self, missing: int) -> None:
        """Inside a block, have the kernel wake us when the rest of it is there (SO_RCVLOWAT)
        instead of once per TCP segment: each wake-up is an event-loop turn and a read
        through asyncio's streams, and under tbf segments come one by one (~11 per 16 KiB
        block). Between frames the mark is 1 byte, so control messages are read at once. A
        closed connection wakes us whatever the mark."""
        lowat = min(missing, MAX_RCVLOWAT) if missing > MIN_RCVLOWAT else 1
        if lowat == self._rcvlowat or self._rcvlowat < 0:
            return
        self._rcvlowat = lowat
        sock = self.writer.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
            except OSError:  # not a TCP socket (a test's socketpair): reads stay as they are
                self._rcvlowat = -1

    # ------------------------------------------------------------------ uploading
    async def _upload_loop(self) -> None:
        t = self.torrent
        core, state = t.core, self.state
        while not self.closed:
            await self._queue_event.wait()
            self._queue_event.clear()
            while not self.closed:
                req = core.next_upload(state)
                if req is None:
                    break
                index, begin, length = req
                data = await self.read_block(index, begin, length)
                if self.closed:
                    return
                await self._send_piece(index, begin, data)
                core.block_sent(state, length, time.monotonic(), index)
                t.flush()

    async def read_block(self, index: int, begin: int, length: int) -> bytes:
        return await self.torrent.read_block(index, begin, length)

    def _bound_backlog(self, block: int) -> None:
        """Queue at most about one block ahead of control messages (see MIN_UNSENT)."""
        if block == self._high:  # the same block size as last time: nothing to change
            return
        self._high = block
        transport = self.writer.transport
        transport.set_write_buffer_limits(high=block)  # drain() then waits for 1/4 of it
        limit = max(MIN_UNSENT, block)
        if limit != self._unsent_limit and hasattr(socket, "TCP_NOTSENT_LOWAT"):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, limit)
                except OSError:  # not TCP (a test's socketpair), or an old kernel
                    pass
            self._unsent_limit = limit

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
        self._bound_backlog(total)
        if len(data) <= SEGMENT:
            # one write: with TCP_NODELAY a header written alone leaves as its own tiny
            # packet, one more trip through every hop of the path for each block
            writer.write(header + data)
        else:  # a big block: a copy costs more than one small packet per block
            writer.write(header)
            writer.write(data)
        if writer.transport.get_write_buffer_size():
            # no wait_for (a task and a timer per block): the torrent's tick watches the clock
            self.draining_since = time.monotonic()
            try:
                await writer.drain()
            finally:
                self.draining_since = 0.0
        else:  # all of it went to the kernel: no need to wait, but let other work run
            await asyncio.sleep(0)
        self.agent.rate_up.add(total)

    def check_upload(self, now: float) -> None:
        """Called every second: a block that waited over UPLOAD_STALL for the peer to read
        means a peer that asks and stops reading (slow loris): cut it."""
        since = self.draining_since
        if since and now - since > UPLOAD_STALL and not self.closed:
            self.agent.protocol_error("not_reading", self, f"no upload progress in {UPLOAD_STALL:.0f} s")
            self.close(abort=True)
