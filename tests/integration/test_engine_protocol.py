"""Hand-made hostile input against a real agent over TCP: each one is a clean disconnect
counted in meshbed_protocol_errors_total{reason}, and the agent keeps serving."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from swarm_support import Content, fake_seed, make_agent, make_content, sample

from peer import agent, connection, wire
from peer.agent import Agent
from peer.core import requests, swarm

MiB = 1 << 20
PEER_ID = b"-XX0000-abcdefghijkl"
PLAIN = bytes(8)  # no extension bits: an ordinary (non-meshbed) client
FAST = bytes([0, 0, 0, 0, 0, 0, 0, wire.FAST_BIT])


async def _seeder(tmp: Path) -> tuple[Agent, Content]:
    content = make_content(tmp, 2 * MiB, 256 * 1024)
    a = make_agent(tmp, "seeders-0")
    await a.start()
    await a.share(content.meta, content.path)
    return a, content


async def _connect(a: Agent, content: Content, reserved: bytes = PLAIN) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", a.wire_port)
    writer.write(wire.encode_handshake(content.meta.info_hash, PEER_ID, reserved))
    hs = wire.decode_handshake(await asyncio.wait_for(reader.readexactly(68), 5))
    assert hs.info_hash == content.meta.info_hash
    return reader, writer


async def _closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """Read until EOF (True) or timeout (False)."""
    try:
        await with_timeout(reader, timeout)
    except asyncio.TimeoutError:
        return False
    except ConnectionResetError:  # aborted (RST) rather than closed: still closed
        pass
    return True


async def with_timeout(reader: asyncio.StreamReader, timeout: float) -> None:
    async def drain() -> None:
        while await reader.read(65536):
            pass
    await asyncio.wait_for(drain(), timeout)


async def _tiny_window(a: Agent, content: Content, reserved: bytes) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection with a 4 KiB receive buffer (the agent's writes back up at once),
    our handshake sent."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", a.wire_port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(wire.encode_handshake(content.meta.info_hash, PEER_ID, reserved))
    return reader, writer


def _run(tmp: Path, body: Callable[[Agent, Content], Awaitable[Any]]) -> None:
    async def main() -> None:
        a, content = await _seeder(tmp)
        try:
            await body(a, content)
            # the agent still serves a well-behaved peer afterwards
            reader, writer = await _connect(a, content)
            writer.close()
        finally:
            await a.close()
    asyncio.run(main())


def _errors(a: Agent, reason: str) -> float:
    return sample(a.metrics.registry, "meshbed_protocol_errors_total", reason=reason)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (struct.pack(">I", wire.MAX_FRAME + 1), "frame_too_large"),
        (struct.pack(">IB", 1, 99), "unknown_id"),
        (struct.pack(">IBI", 5, wire.HAVE, 10_000), "bad_index"),
        (struct.pack(">IBB", 2, wire.HAVE, 1), "bad_length"),
        (wire.encode(wire.Request(0, 0, 32 * 1024)), "request_too_large"),
        (wire.encode(wire.Request(0, 0, 2 * MiB)), "request_too_large"),
        (wire.encode(wire.Request(0, 250 * 1024, 16 * 1024)), "bad_request"),
        (wire.encode(wire.Request(99, 0, 16 * 1024)), "bad_index"),
        (wire.encode(wire.HaveAll()), "fast_not_negotiated"),
    ],
)
def test_bad_frames_disconnect_and_count(tmp_path: Path, frame: bytes, reason: str) -> None:
    async def body(a: Agent, content: Content) -> None:
        reader, writer = await _connect(a, content)
        writer.write(frame)
        assert await _closed(reader)
        writer.close()
        assert _errors(a, reason) == 1

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_unknown_infohash_is_refused(tmp_path: Path) -> None:
    async def body(a: Agent, content: Content) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", a.wire_port)
        writer.write(wire.encode_handshake(b"\x01" * 20, PEER_ID))
        assert await _closed(reader)
        assert _errors(a, "unknown_infohash") == 1
        writer.close()

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_garbage_handshake_and_silent_client_time_out(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "HANDSHAKE_TIMEOUT", 0.5)

    async def body(a: Agent, content: Content) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", a.wire_port)
        # not a BitTorrent handshake, so taken for MSE: no sync marker within its bounds
        writer.write(b"GET / HTTP/1.1\r\n" * 50)
        assert await _closed(reader)
        assert _errors(a, "mse_no_sync") == 1 and _errors(a, "bad_handshake") == 0
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", a.wire_port)
        assert await _closed(reader, timeout=3.0)  # said nothing: dropped after the timeout
        writer.close()

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_request_flood_is_cut_off(tmp_path: Path) -> None:
    async def body(a: Agent, content: Content) -> None:
        reader, writer = await _connect(a, content)
        writer.write(wire.encode(wire.Interested()))
        # wait for the unchoke (a free slot is given at once)
        while True:
            (n,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 5))
            body = await reader.readexactly(n)
            if n and body[0] == wire.UNCHOKE:
                break
        req = wire.encode(wire.Request(0, 0, 16 * 1024))
        writer.write(req * 23000)  # over 10 x reqq beyond the queue; never reads the answers
        assert await _closed(reader, timeout=10)
        assert _errors(a, "request_flood") == 1
        writer.close()

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_out_of_range_block_from_a_seed_disconnects_the_downloader(tmp_path: Path) -> None:
    """A fake seed answers the agent's first request with a block past the piece end."""

    async def main() -> None:
        content = make_content(tmp_path, 2 * MiB, 256 * 1024)
        got_request = asyncio.Event()
        closed = asyncio.Event()

        async def bad_seed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            def answer(index: int, begin: int, length: int) -> None:
                got_request.set()
                writer.write(wire.piece_header(index, 255 * 1024, length))
                writer.write(b"\0" * length)

            await fake_seed(reader, writer, content.meta.info_hash, answer, PEER_ID)
            closed.set()

        server = await asyncio.start_server(bad_seed, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        a = make_agent(tmp_path, "leechers-0")
        await a.start()
        try:
            await a.fetch(content.meta, [("127.0.0.1", port)])
            await asyncio.wait_for(got_request.wait(), 5)
            await asyncio.wait_for(closed.wait(), 5)
            assert _errors(a, "bad_block") == 1
            assert a.torrents[content.meta.info_hash].picker.have_count == 0
        finally:
            await a.close()
            server.close()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_peer_that_never_reads_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests while choked are rejected (BEP 6); a peer that floods them and never reads
    the rejects must not make the agent buffer without bound."""
    monkeypatch.setattr(connection, "MAX_SEND_BACKLOG", 64 * 1024)

    async def body(a: Agent, content: Content) -> None:
        reader, writer = await _tiny_window(a, content, FAST)
        reader._transport.pause_reading()  # type: ignore[attr-defined]
        chunk = wire.encode(wire.Request(0, 0, 16 * 1024)) * 20_000
        try:
            for _ in range(60):  # at most 15 MB of requests
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 10)
                if _errors(a, "not_reading"):
                    break
        except (ConnectionError, asyncio.TimeoutError):
            pass
        assert _errors(a, "not_reading") == 1
        writer.close()

    _run(tmp_path, body)


@pytest.mark.timeout(60)
def test_unchoked_peer_that_asks_and_stops_reading_is_cut(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow loris: unchoked, it asks for blocks and never reads them. The block that waits
    for it longer than UPLOAD_STALL ends the connection (the housekeeping tick watches)."""
    monkeypatch.setattr(connection, "UPLOAD_STALL", 1.0)

    async def body(a: Agent, content: Content) -> None:
        reader, writer = await _tiny_window(a, content, PLAIN)
        await reader.readexactly(68)
        writer.write(wire.encode(wire.Interested()))
        decoder = wire.FrameDecoder()
        while not any(isinstance(m, wire.Unchoke) for m in decoder.feed(await reader.read(4096))):
            pass
        reader._transport.pause_reading()  # type: ignore[attr-defined]
        writer.write(b"".join(wire.encode(wire.Request(i, b * 16384, 16384))
                              for i in range(4) for b in range(16)))  # 4 MiB asked
        deadline = asyncio.get_running_loop().time() + 20.0
        while not _errors(a, "not_reading") and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert _errors(a, "not_reading") == 1
        writer.close()

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_keepalives_are_sent_and_silent_peers_dropped(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm, "KEEPALIVE_SECONDS", 1.0)
    monkeypatch.setattr(swarm, "IDLE_SECONDS", 3.0)

    async def body(a: Agent, content: Content) -> None:
        reader, writer = await _connect(a, content)
        keepalives = 0
        t0 = asyncio.get_running_loop().time()
        try:
            while True:
                (n,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 10))
                if n == 0:
                    keepalives += 1
                else:
                    await reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        elapsed = asyncio.get_running_loop().time() - t0
        assert keepalives >= 1
        assert 2.5 <= elapsed <= 8.0  # dropped for silence after IDLE_SECONDS
        writer.close()

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_aria2_style_repeated_bitfields_are_accepted(tmp_path: Path) -> None:
    """aria2 sends HAVE_NONE, allowed-fast, then bitfields as updates: not an error."""

    async def body(a: Agent, content: Content) -> None:
        reader, writer = await _connect(a, content, FAST)
        n = content.meta.num_pieces
        first, later = wire.Bitfield(n), wire.Bitfield(n)
        first.set(0)
        later.set(0)
        later.set(1)
        writer.write(wire.encode(wire.HaveNone()) + wire.encode(wire.AllowedFast(3))
                     + wire.encode(first) + wire.encode(later))
        t = a.torrents[content.meta.info_hash]
        for _ in range(100):
            if t.picker.availability(1) == 1:
                break
            await asyncio.sleep(0.02)
        assert [t.picker.availability(i) for i in range(3)] == [1, 1, 0]
        assert not await _closed(reader, timeout=0.5)
        writer.close()
        assert not any(
            _errors(a, r) for r in ("late_bitfield", "bad_bitfield", "fast_not_negotiated"))

    _run(tmp_path, body)


@pytest.mark.timeout(30)
def test_choking_a_fast_peer_rejects_every_pending_request(tmp_path: Path) -> None:
    """BEP 6: a choke answers each queued request with a Reject (the block already on its way
    still lands), so the other side can ask elsewhere at once."""
    async def main() -> None:
        content = make_content(tmp_path, 2 * MiB, 256 * 1024)
        a = make_agent(tmp_path, "seeders-0", up_mbit=1)  # slow: requests stay queued
        await a.start()
        try:
            await a.share(content.meta, content.path)
            reader, writer = await _connect(a, content, FAST)
            writer.write(wire.encode(wire.Interested()))

            async def next_msg() -> bytes:
                (n,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 10))
                return await reader.readexactly(n)

            while (await next_msg())[:1] != bytes([wire.UNCHOKE]):
                pass
            keys = [(i // 16, (i % 16) * 16384, 16384) for i in range(24)]
            writer.write(b"".join(wire.encode(wire.Request(*k)) for k in keys))
            t = a.torrents[content.meta.info_hash]
            for _ in range(100):  # until the seeder has them queued
                conns = list(t.conns.values())
                if conns and len(conns[0].queue) >= 20:
                    break
                await asyncio.sleep(0.02)
            t.set_choking(conns[0], True)
            answered: set[tuple[int, int, int]] = set()
            rejected = 0
            choked = False
            while len(answered) < len(keys):
                body = await next_msg()
                if not body:
                    continue
                if body[0] == wire.CHOKE:
                    choked = True
                elif body[0] == wire.PIECE:
                    index, begin = struct.unpack_from(">II", body, 1)
                    answered.add((index, begin, len(body) - 9))
                elif body[0] == wire.REJECT:
                    assert choked  # the Choke comes first
                    answered.add(struct.unpack_from(">III", body, 1))
                    rejected += 1
            assert answered == set(keys)
            assert rejected >= 15
            writer.close()
        finally:
            await a.close()

    asyncio.run(main())


@pytest.mark.timeout(40)
def test_requests_a_choking_peer_never_rejected_are_asked_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side of BEP 6: a fast-extension seed that chokes us without rejecting our
    requests (then unchokes) must not hold them until the snub: after the grace they are
    cancelled and asked again (before the fix: snubbed, never asked again = client-server
    hang when it is the only source)."""
    monkeypatch.setattr(requests, "CHOKE_GRACE_SECONDS", 1.0)
    monkeypatch.setattr(requests, "SNUB_SECONDS", 15.0)  # the grace, not the snub, acts
    content = make_content(tmp_path, 1 * MiB, 256 * 1024)
    seen: dict[str, list[tuple[int, int, int]]] = {"first": [], "cancel": [], "again": []}

    async def raw_seed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hs = wire.decode_handshake(await reader.readexactly(68))
        writer.write(wire.encode_handshake(hs.info_hash, PEER_ID, FAST))
        writer.write(wire.encode(wire.HaveAll()))

        async def next_msg() -> bytes:
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            return await reader.readexactly(n)

        while (await next_msg())[:1] != bytes([wire.INTERESTED]):
            pass
        writer.write(wire.encode(wire.Unchoke()))
        body = await next_msg()
        while body[:1] != bytes([wire.REQUEST]):
            body = await next_msg()
        seen["first"].append(struct.unpack_from(">III", body, 1))
        await asyncio.sleep(0.3)  # the rest of the first batch
        while reader._buffer:  # type: ignore[attr-defined]
            body = await next_msg()
            if body[:1] == bytes([wire.REQUEST]):
                seen["first"].append(struct.unpack_from(">III", body, 1))
        writer.write(wire.encode(wire.Choke()))  # ... and never a Reject
        await asyncio.sleep(0.5)
        writer.write(wire.encode(wire.Unchoke()))
        while len(seen["again"]) < len(seen["first"]):
            body = await next_msg()
            if not body:
                continue
            key = struct.unpack_from(">III", body, 1) if len(body) == 13 else None
            if body[0] == wire.CANCEL:
                seen["cancel"].append(key)  # type: ignore[arg-type]
            elif body[0] == wire.REQUEST and key in seen["first"]:
                seen["again"].append(key)  # type: ignore[arg-type]
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(raw_seed, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        a = make_agent(tmp_path, "leechers-0")
        await a.start()
        try:
            await a.fetch(content.meta, [("127.0.0.1", port)], pex=False)
            for _ in range(300):
                if seen["first"] and len(seen["again"]) >= len(seen["first"]):
                    break
                await asyncio.sleep(0.1)
        finally:
            await a.close()
            server.close()

    asyncio.run(main())
    assert seen["first"]
    assert sorted(seen["cancel"]) == sorted(seen["first"])
    assert sorted(seen["again"]) == sorted(seen["first"])
