"""BEP 9 with libtorrent on 127.0.0.1, both ways: our codec fetches the info dict from a
libtorrent seeder over a raw socket, and libtorrent given a magnet gets it from us."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer import extensions, metainfo, wire
from peer.metadata import (
    MetaData,
    MetadataAssembler,
    MetadataServer,
    MetaRequest,
    decode_metadata_msg,
    encode_metadata_msg,
    make_magnet,
    parse_magnet,
)
from tests.facilities import missing

try:
    import libtorrent as lt
except ImportError:
    missing("libtorrent (PyPI) is not installed", module=True)

from tests.ltpeer import LtPeer, make_torrent

pytestmark = pytest.mark.timeout(120)
PIECE = 16 * 1024
PEER_ID = b"-MB0001-" + b"metadata1234"


@pytest.fixture
def torrent(tmp_path: Path) -> tuple[Path, bytes]:
    """Many pieces, so the info dict spans several 16 KiB metadata pieces."""
    d = tmp_path / "seed"
    d.mkdir()
    f = d / "data.bin"
    f.write_bytes(random.Random(4).randbytes(2500 * PIECE + 7))
    return f, make_torrent(f, PIECE)


@pytest.fixture
def lt_peers() -> Iterator[list[LtPeer]]:
    peers: list[LtPeer] = []
    yield peers
    for p in peers:
        p.close()


async def _frames(r: asyncio.StreamReader, dec: wire.FrameDecoder) -> list[wire.Message]:
    data = await asyncio.wait_for(r.read(65536), 30)
    if not data:
        raise ConnectionError("peer closed")
    return dec.feed(data)


async def _ext_handshake(w: asyncio.StreamWriter, metadata_size: int | None) -> None:
    hs = extensions.ExtHandshake(m={extensions.UT_METADATA: extensions.UT_METADATA_ID},
                                 client="meshbed-test", metadata_size=metadata_size)
    w.write(wire.encode(wire.Extended(extensions.HANDSHAKE_ID,
                                      extensions.encode_ext_handshake(hs))))
    await w.drain()


def test_fetch_metadata_from_libtorrent(torrent: tuple[Path, bytes],
                                        lt_peers: list[LtPeer]) -> None:
    path, data = torrent
    meta = metainfo.parse(data)
    assert len(meta.info_bytes) > 3 * 16384
    peer = LtPeer(path.parent.parent / "lt")
    lt_peers.append(peer)
    shutil.copy(path, peer.save_path / path.name)
    peer.add(data)
    peer.wait_state(seeding=True, timeout=30)

    async def main() -> bytes:
        r, w = await asyncio.open_connection("127.0.0.1", peer.port)
        try:
            w.write(wire.encode_handshake(meta.info_hash, PEER_ID))
            head = await asyncio.wait_for(r.readexactly(wire.HANDSHAKE_LEN), 30)
            assert wire.decode_handshake(head).supports_extensions
            await _ext_handshake(w, None)
            dec = wire.FrameDecoder()
            asm: MetadataAssembler | None = None
            their_id = 0
            while True:
                for msg in await _frames(r, dec):
                    if not isinstance(msg, wire.Extended):
                        continue
                    if msg.ext_id == extensions.HANDSHAKE_ID:
                        ext = extensions.decode_ext_handshake(msg.payload)
                        their_id = ext.m[extensions.UT_METADATA]
                        assert ext.metadata_size is not None
                        asm = MetadataAssembler(meta.info_hash, ext.metadata_size)
                        while (i := asm.next_request()) is not None:
                            w.write(wire.encode(wire.Extended(
                                their_id, encode_metadata_msg(MetaRequest(i)))))
                    elif msg.ext_id == extensions.UT_METADATA_ID and asm is not None:
                        got = decode_metadata_msg(msg.payload)
                        assert isinstance(got, MetaData), got
                        if asm.receive(got):
                            assert asm.info_bytes is not None
                            return asm.info_bytes
        finally:
            w.close()

    assert asyncio.run(main()) == meta.info_bytes


def test_libtorrent_magnet_gets_metadata_from_us(
    torrent: tuple[Path, bytes], lt_peers: list[LtPeer], tmp_path: Path
) -> None:
    _, data = torrent
    meta = metainfo.parse(data)
    server = MetadataServer(meta.info_bytes)
    served: list[int] = []

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readexactly(wire.HANDSHAKE_LEN)
            assert wire.decode_handshake(head).info_hash == meta.info_hash
            w.write(wire.encode_handshake(meta.info_hash, PEER_ID))
            await _ext_handshake(w, server.size)
            w.write(wire.encode(wire.HaveNone()))
            dec = wire.FrameDecoder()
            their_id = 0
            while True:
                for msg in await _frames(r, dec):
                    if isinstance(msg, wire.Extended) and msg.ext_id == 0:
                        their_id = extensions.decode_ext_handshake(msg.payload).m.get(
                            extensions.UT_METADATA, 0)
                    elif isinstance(msg, wire.Extended) and msg.ext_id == 3 and their_id:
                        answer = server.answer(decode_metadata_msg(msg.payload))
                        if answer is not None:
                            served.append(answer.piece)
                            w.write(wire.encode(wire.Extended(their_id,
                                                              encode_metadata_msg(answer))))
                await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            w.close()

    async def main() -> bytes:
        srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        peer = LtPeer(tmp_path / "lt-magnet")
        lt_peers.append(peer)
        atp = lt.parse_magnet_uri(make_magnet(meta.info_hash, name=meta.name,
                                              peers=(("127.0.0.1", port),)))
        atp.save_path = str(peer.save_path)
        atp.flags |= lt.torrent_flags.upload_mode  # metadata only; no payload to fetch
        peer.handle = peer.session.add_torrent(atp)
        peer.handle.connect_peer(("127.0.0.1", port))
        deadline = time.monotonic() + 30
        try:
            while not peer.handle.status().has_metadata:
                assert time.monotonic() < deadline, "libtorrent got no metadata in 30 s"
                await asyncio.sleep(0.05)  # polls libtorrent; the bound is the deadline
            return bytes(peer.handle.torrent_file().info_section())
        finally:
            srv.close()

    assert asyncio.run(main()) == meta.info_bytes
    assert sorted(set(served)) == list(range(-(-server.size // 16384)))


def test_magnet_links_agree_with_libtorrent(tmp_path: Path) -> None:
    """A hybrid torrent's magnet (btih + btmh, dn, tr) read both ways."""
    f = tmp_path / "h.bin"
    f.write_bytes(random.Random(5).randbytes(100_000))
    meta = metainfo.create(f, piece_length=PIECE, hybrid=True)
    assert meta.info_hash_v2 is not None
    ti = lt.torrent_info(lt.bdecode(meta.to_torrent_bytes()))
    ti.add_tracker("udp://127.0.0.1:6969/announce")
    theirs = parse_magnet(lt.make_magnet_uri(ti))
    assert (theirs.info_hash, theirs.info_hash_v2) == (meta.info_hash, meta.info_hash_v2)
    assert theirs.name == "h.bin" and theirs.trackers == ["udp://127.0.0.1:6969/announce"]
    ours = make_magnet(meta.info_hash, name="h.bin", info_hash_v2=meta.info_hash_v2,
                       trackers=("http://127.0.0.1:1/announce",), peers=(("127.0.0.1", 7),))
    atp = lt.parse_magnet_uri(ours)
    assert str(atp.info_hashes.v1) == meta.hexhash
    assert str(atp.info_hashes.v2) == meta.info_hash_v2.hex()
    assert atp.name == "h.bin" and list(atp.trackers) == ["http://127.0.0.1:1/announce"]
    assert [tuple(p) for p in atp.peers] == [("127.0.0.1", 7)]
