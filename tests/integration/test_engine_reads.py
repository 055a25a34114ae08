"""How a real agent reads and serves blocks over TCP: inside a block it asks the kernel to
wake it only when the rest is there (SO_RCVLOWAT), between frames at once; blocks it serves
come from its cache of whole pieces."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from swarm_support import addr, fake_seed, make_agent, make_content, wait_complete

from peer import torrent, wire
from peer.connection import PeerConnection

MiB = 1 << 20


async def _until(cond: object, what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _rcvlowat(conn: PeerConnection) -> int:
    sock = conn.writer.transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))


@pytest.mark.timeout(30)
def test_inside_a_block_the_agent_waits_for_its_rest_and_reads_control_messages_at_once(
        tmp_path: Path) -> None:
    """A fake seed sends half a block and stops: the agent's socket asks for the other half
    (not one wake-up per segment); after the rest, the mark is back to one byte, so a lone
    CHOKE is read at once."""

    async def main() -> None:
        content = make_content(tmp_path, 2 * MiB, 256 * 1024)
        first_request: asyncio.Future[tuple[int, int, int]] = asyncio.get_running_loop().create_future()
        writers: list[asyncio.StreamWriter] = []

        async def seed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            def note(index: int, begin: int, length: int) -> None:
                if not first_request.done():
                    first_request.set_result((index, begin, length))

            writers.append(writer)
            await fake_seed(reader, writer, content.meta.info_hash, note)

        server = await asyncio.start_server(seed, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        a = make_agent(tmp_path, "leechers-0")
        await a.start()
        try:
            await a.fetch(content.meta, [("127.0.0.1", port)])
            index, begin, length = await asyncio.wait_for(first_request, 5)
            t = a.torrents[content.meta.info_hash]
            (state,) = t.conns.values()
            conn = state.key
            assert isinstance(conn, PeerConnection)
            data = content.path.read_bytes()[index * 256 * 1024 + begin:][:length]
            frame = wire.piece_header(index, begin, length) + data
            half = len(frame) // 2
            writers[0].write(frame[:half])
            await _until(lambda: _rcvlowat(conn) == len(frame) - half, "the mark for the rest")
            got = t.core.downloaded
            writers[0].write(frame[half:])
            await _until(lambda: t.core.downloaded == got + length, "the block")
            assert _rcvlowat(conn) == 1
            writers[0].write(wire.encode(wire.Choke()))  # 5 bytes, alone
            await _until(lambda: state.peer_choking, "the CHOKE")
        finally:
            await a.close()
            server.close()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_blocks_are_served_from_whole_pieces_read_once(tmp_path: Path) -> None:
    """The seeder reads each piece from disk once and serves its other blocks from memory;
    the leecher's copy is the seeder's, byte for byte."""

    async def main() -> None:
        content = make_content(tmp_path, 2 * MiB, 256 * 1024)
        seeder, leecher = make_agent(tmp_path, "seeders-0"), make_agent(tmp_path, "leechers-0")
        try:
            for a in (seeder, leecher):
                await a.start()
            await seeder.share(content.meta, content.path)
            await leecher.fetch(content.meta, [addr(seeder)], sha256=content.sha256)
            await wait_complete([leecher], content.meta, timeout=30)
            h = content.meta.hexhash
            st = seeder.status()["torrents"][h]
            # 8 pieces, each read once; the rest of each (blocks sized by the leecher) hit
            assert st["piece_cache"]["misses"] == content.meta.num_pieces
            assert st["piece_cache"]["hits"] > st["piece_cache"]["misses"]
            assert leecher.status()["torrents"][h]["verified"] is True
            # the leecher served nothing, but the pieces it just verified stay for its peers
            lt = leecher.torrents[content.meta.info_hash]
            assert lt.cache.size > 0 and lt.cache_used_at > 0
            lt.tick(lt.cache_used_at + 1)
            assert lt.cache.size > 0
            # an agent nobody asks for blocks lets its cache go
            t = seeder.torrents[content.meta.info_hash]
            assert t.cache.size > 0
            t.tick(t.cache_used_at + torrent.CACHE_IDLE / 2)
            assert t.cache.size > 0
            t.tick(t.cache_used_at + torrent.CACHE_IDLE + 1)
            assert t.cache.size == 0
            assert (tmp_path / "leechers-0" / "torrents" / h / "movie").read_bytes() == \
                content.path.read_bytes()
        finally:
            for a in (seeder, leecher):
                await a.close()

    asyncio.run(main())
