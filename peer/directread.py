"""Reading a handshaken peer connection straight from its transport, without a StreamReader.

Through asyncio's streams every read costs a future, a wake-up of the reading task, a copy
into the StreamReader's buffer and one out of it; a swarm agent reads hundreds of small
messages a second (HAVEs, requests), so that path was a large share of its CPU. A
:class:`DirectReader` takes the transport's place of the StreamReaderProtocol after the
handshake: bytes land in one reused buffer and are handled in the transport's own read
callback. Writing stays the StreamWriter's: the flow-control and connection-loss callbacks
are passed on to the old protocol, so ``drain()`` works as before.

It only serves links whose reads need no gate (no receive rate, latency or loss emulated by
the agent, :attr:`peer.shaping.LinkEmulator.passes_through`): the gates wait, and waiting
needs the reading task. When the link starts emulating mid-connection, the reader hands the
transport back to the stream (with the bytes just read) and ``ended`` says so.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, Optional

READ_BUFFER = 256 * 1024  # bytes per read at most (connection.py reads the stream in these too)
_per_thread = threading.local()


def _read_buffer() -> memoryview:
    """One buffer for every connection of this thread's event loop: the transport fills it
    and buffer_updated copies it out within one callback, so they never overlap (one per
    connection would hold 256 KiB each: 12 MiB for an agent's 50 peers)."""
    buf = getattr(_per_thread, "buf", None)
    if buf is None:
        buf = _per_thread.buf = memoryview(bytearray(READ_BUFFER))
    return buf


class DirectReader(asyncio.BufferedProtocol):
    def __init__(self, stream: asyncio.StreamReaderProtocol, transport: asyncio.Transport,
                 handle: Callable[[bytes], None], passes_through: Callable[[], bool]) -> None:
        """``handle`` gets every chunk read (raw bytes: decryption is the caller's);
        ``passes_through`` is asked before each chunk: False hands the transport back."""
        self._stream = stream
        self._transport = transport
        self._handle = handle
        self._passes_through = passes_through
        self._buf = _read_buffer()
        # True: handed back to the stream (read on from it); False: the connection ended;
        # an exception: handling a chunk failed (reading is paused)
        self.ended: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    # --- reading ---------------------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buf

    def buffer_updated(self, nbytes: int) -> None:
        if self.ended.done():
            return
        data = bytes(self._buf[:nbytes])  # a copy: the buffer is read into again
        if not self._passes_through():
            self.hand_back(data)
            return
        try:
            self._handle(data)
        except Exception as e:  # the reading task raises it (and closes the connection)
            self._transport.pause_reading()
            self.ended.set_exception(e)

    def hand_back(self, data: bytes = b"") -> None:
        """Give the transport back to the stream, with ``data`` (read, not handled)."""
        self._transport.set_protocol(self._stream)
        if data:
            self._stream.data_received(data)
        if not self.ended.done():
            self.ended.set_result(True)

    def eof_received(self) -> Optional[bool]:
        self._stream.eof_received()
        self._end()
        return False  # close the transport (plain TCP: no half-open connections)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._stream.connection_lost(exc)  # wakes the writer's drain() with the error
        self._end()

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(False)

    # --- writing: the StreamWriter's flow control lives in the old protocol -----------------
    def pause_writing(self) -> None:
        self._stream.pause_writing()

    def resume_writing(self) -> None:
        self._stream.resume_writing()


def take_over(reader: asyncio.StreamReader, transport: asyncio.BaseTransport,
              handle: Callable[[bytes], None], passes_through: Callable[[], bool],
              ) -> Optional[tuple[DirectReader, bytes]]:
    """Put a :class:`DirectReader` on ``transport`` in place of ``reader``'s protocol.
    Returns it and the bytes the stream had buffered (raw, to handle first), or None when
    the connection cannot be read directly (not a plain asyncio stream, or closing)."""
    stream = transport.get_protocol()
    buffered = getattr(reader, "_buffer", None)  # asyncio's, unchanged since 3.4
    if (not isinstance(stream, asyncio.StreamReaderProtocol) or not isinstance(buffered, bytearray)
            or not isinstance(transport, asyncio.Transport) or transport.is_closing()
            or reader.exception() is not None or not passes_through()):
        return None
    direct = DirectReader(stream, transport, handle, passes_through)
    leftover = bytes(buffered)
    buffered.clear()
    transport.set_protocol(direct)
    transport.resume_reading()  # the stream may have paused it (its buffer over the limit)
    return direct, leftover


__all__ = ["DirectReader", "READ_BUFFER", "take_over"]
