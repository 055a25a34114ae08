"""The direct reader (peer/directread.py) over a real TCP connection on loopback: it takes
the stream's buffered bytes, reads on in the transport's callbacks, keeps the writer's
drain() working, ends with the connection, hands the transport back to the stream when the
link starts emulating, and reports a handler's error."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

from peer.directread import take_over

Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamWriter]


def run(test: Callable[[Pair], Awaitable[None]]) -> None:
    async def main() -> None:
        accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future())

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.set_result((r, w))

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        pr, pw = await asyncio.wait_for(accepted, 5)
        try:
            await asyncio.wait_for(test((r, w, pr, pw)), 10)
        finally:
            w.close()
            pw.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


async def until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.005)


def test_buffered_bytes_come_first_then_reads_go_to_the_handler_until_the_peer_closes() -> None:
    async def body(p: Pair) -> None:
        r, w, pr, pw = p
        pw.write(b"hello" + b"rest")
        assert await r.readexactly(5) == b"hello"  # the handshake, read through the stream
        await until(lambda: len(r._buffer) == 4)  # type: ignore[attr-defined]
        got: list[bytes] = []
        taken = take_over(r, w.transport, got.append, lambda: True)
        assert taken is not None
        direct, leftover = taken
        assert leftover == b"rest"
        pw.write(b"more")
        await until(lambda: b"".join(got) == b"more")
        pw.close()
        assert await direct.ended is False

    run(body)


def test_the_writer_still_drains_after_the_take_over() -> None:
    """Flow control (pause/resume_writing) reaches the StreamWriter's protocol."""

    async def body(p: Pair) -> None:
        r, w, pr, pw = p
        taken = take_over(r, w.transport, lambda b: None, lambda: True)
        assert taken is not None
        w.transport.set_write_buffer_limits(high=64 * 1024)
        blob = b"x" * (8 << 20)  # more than the kernel's buffers: the transport pauses
        w.write(blob)
        assert w.transport.get_write_buffer_size() > 64 * 1024
        drained = asyncio.ensure_future(w.drain())
        await asyncio.sleep(0)  # one turn: an unpaused writer's drain() is done by now
        assert not drained.done()  # paused: waits for the peer to read
        assert await pr.readexactly(len(blob)) == blob
        await drained

    run(body)


def test_a_link_that_starts_emulating_hands_the_transport_back_with_the_bytes_read() -> None:
    async def body(p: Pair) -> None:
        r, w, pr, pw = p
        through = [True]
        got: list[bytes] = []
        taken = take_over(r, w.transport, got.append, lambda: through[0])
        assert taken is not None
        direct = taken[0]
        pw.write(b"one")
        await until(lambda: got == [b"one"])
        through[0] = False
        pw.write(b"two")
        assert await direct.ended is True
        assert await r.readexactly(3) == b"two"  # the stream reads on
        pw.write(b"three")
        assert await r.readexactly(5) == b"three"
        assert got == [b"one"]

    run(body)


def test_a_handler_error_ends_the_reader_with_it_and_stops_reading() -> None:
    async def body(p: Pair) -> None:
        r, w, pr, pw = p
        calls: list[bytes] = []

        def handle(data: bytes) -> None:
            calls.append(data)
            raise ValueError("bad frame")

        taken = take_over(r, w.transport, handle, lambda: True)
        assert taken is not None
        pw.write(b"junk")
        with pytest.raises(ValueError, match="bad frame"):
            await taken[0].ended
        assert not w.transport.is_reading()
        assert calls == [b"junk"]

    run(body)


def test_no_take_over_of_an_emulated_link_or_a_closing_transport() -> None:
    async def body(p: Pair) -> None:
        r, w, pr, pw = p
        assert take_over(r, w.transport, lambda b: None, lambda: False) is None
        w.transport.close()
        assert take_over(r, w.transport, lambda b: None, lambda: True) is None

    run(body)
