"""peer/mse.py against real clients on 127.0.0.1: libtorrent with default settings dialling
our responder (it tries MSE first), our initiator against libtorrent and transmission-cli
that insist on RC4. After MSE each test reads real BitTorrent traffic through the result's
ciphers, so a wrong keystream fails the test."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer import metainfo, mse, wire
from tests.facilities import missing, require_binary

try:
    import libtorrent as lt
except ImportError:
    missing("libtorrent (PyPI) is not installed", module=True)

from tests.ltpeer import LtPeer, make_torrent
from tests.tracker import Tracker, free_port

pytestmark = pytest.mark.timeout(120)
PIECE = 32 * 1024
PEER_ID = b"-MB0001-" + b"mseinterop12"


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    d = tmp_path / "seed"
    d.mkdir()
    f = d / "data.bin"
    f.write_bytes(random.Random(9).randbytes(5 * PIECE + 123))
    return f


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for t in reversed(things):
        if isinstance(t, (LtPeer, Tracker)):
            t.close()
        elif isinstance(t, subprocess.Popen):
            t.kill()
            t.wait(10)


async def _serve_one_handshake(ih: bytes, start: object) -> tuple[list[mse.MseResult],
                                                                   wire.Handshake]:
    """Accept connections on 127.0.0.1 until one completes (MSE or plain) and carries a
    BitTorrent handshake for ``ih``; ``start(port)`` makes the client dial us."""
    accepted: list[mse.MseResult] = []
    connections: list[int] = []  # every accepted TCP connection, failed handshakes included
    got: asyncio.Future[wire.Handshake] = asyncio.get_running_loop().create_future()

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            res = await mse.accept(r, w, [ih], random.Random(1), timeout=20)
            accepted.append(res)
            data = res.initial_payload
            while len(data) < wire.HANDSHAKE_LEN:
                data += res.decrypt(await r.readexactly(wire.HANDSHAKE_LEN - len(data)))
            w.write(res.encrypt(wire.encode_handshake(ih, PEER_ID)))
            await w.drain()
            if not got.done():
                got.set_result(wire.decode_handshake(data[:wire.HANDSHAKE_LEN]))
            await r.read(1)  # hold the connection until the client talks
        except Exception as e:  # noqa: BLE001 - reported through the future
            if not got.done():
                got.set_exception(e)
        finally:
            w.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    try:
        await asyncio.get_running_loop().run_in_executor(
            None, start, server.sockets[0].getsockname()[1])  # type: ignore[arg-type]
        hs = await asyncio.wait_for(got, 60)
        # The first connection completed: no failed MSE attempt, no plaintext retry.
        assert len(connections) == 1, f"{len(connections)} connections"
        return accepted, hs
    finally:
        server.close()


def test_aria2_defaults_dial_our_responder(tmp_path: Path, payload: Path,
                                          cleanup: list[object]) -> None:
    """aria2c with default settings finds us through opentracker and dials: MSE completes
    at the first attempt with plaintext selected."""
    require_binary("aria2c")
    meta = metainfo.create(payload, piece_length=PIECE)
    ot = Tracker(tmp_path / "ot", [meta.hexhash])
    cleanup.append(ot)
    tfile = tmp_path / "t.torrent"
    tfile.write_bytes(ot.torrent_for(meta.to_torrent_bytes()))

    def start(port: int) -> None:
        ot.announce(meta.hexhash, port, 0)
        cleanup.append(subprocess.Popen(
            ["aria2c", "--no-conf", f"--dir={tmp_path / 'aria2'}", "--enable-dht=false",
             "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
             f"--listen-port={free_port()}", "--interface=127.0.0.1",
             "--bt-tracker-interval=2", "--console-log-level=warn", str(tfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    accepted, hs = asyncio.run(_serve_one_handshake(meta.info_hash, start))
    assert hs.info_hash == meta.info_hash
    assert accepted[0].method == mse.CRYPTO_PLAINTEXT, accepted[0].method


def test_libtorrent_defaults_dial_our_responder(
    tmp_path: Path, payload: Path, cleanup: list[object]
) -> None:
    """libtorrent's default out_enc_policy tries MSE first: we complete it at the first
    attempt, select plaintext and find its BitTorrent handshake in the payload."""
    torrent = make_torrent(payload, PIECE)
    ih = metainfo.parse(torrent).info_hash
    peer = LtPeer(tmp_path / "lt")  # default encryption settings
    cleanup.append(peer)
    peer.add(torrent)

    def start(port: int) -> None:
        peer.wait_state(seeding=False, timeout=30)
        peer.handle.connect_peer(("127.0.0.1", port))

    accepted, hs = asyncio.run(_serve_one_handshake(ih, start))
    assert hs.info_hash == ih
    assert accepted[0].method == mse.CRYPTO_PLAINTEXT, "libtorrent allows plaintext"


async def _download_block(port: int, ih: bytes, rng: random.Random) -> tuple[int, bytes]:
    """Dial 127.0.0.1:port with MSE (plaintext and RC4 offered), then handshake, interested,
    request block 0 of piece 1 and return (method, block)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        init = mse.MseInitiator(ih, wire.encode_handshake(ih, PEER_ID), rng)
        res = await mse.negotiate(init, r, w, timeout=20)
        buf = bytearray(res.initial_payload)
        while len(buf) < wire.HANDSHAKE_LEN:
            buf += res.decrypt(await r.read(4096))
        assert wire.decode_handshake(bytes(buf[:wire.HANDSHAKE_LEN])).info_hash == ih
        frames = wire.FrameDecoder()
        pending = list(frames.feed(bytes(buf[wire.HANDSHAKE_LEN:])))
        w.write(res.encrypt(wire.encode(wire.Interested())))
        requested = False
        while True:
            for msg in pending:
                if isinstance(msg, wire.Unchoke) and not requested:
                    w.write(res.encrypt(wire.encode(wire.Request(1, 0, 16384))))
                    requested = True
                if isinstance(msg, wire.Piece) and (msg.index, msg.begin) == (1, 0):
                    return res.method, bytes(msg.block)
            data = await asyncio.wait_for(r.read(65536), 30)
            assert data, "peer closed the connection"
            pending = frames.feed(res.decrypt(data))
    finally:
        w.close()


@pytest.mark.parametrize(("forced", "method"), [
    (True, mse.CRYPTO_RC4),  # libtorrent insists on RC4
    (False, mse.CRYPTO_PLAINTEXT),  # defaults: libtorrent selects the plaintext we offer
], ids=["forced-rc4", "defaults"])
def test_initiator_to_libtorrent(tmp_path: Path, payload: Path, cleanup: list[object],
                                 forced: bool, method: int) -> None:
    torrent = make_torrent(payload, PIECE)
    ih = metainfo.parse(torrent).info_hash
    settings = {
        "in_enc_policy": int(lt.enc_policy.pe_forced),
        "out_enc_policy": int(lt.enc_policy.pe_forced),
        "allowed_enc_level": int(lt.enc_level.rc4),
    } if forced else {}
    peer = LtPeer(payload.parent.parent / "lt", settings)
    cleanup.append(peer)
    shutil.copy(payload, peer.save_path / payload.name)
    peer.add(torrent)
    peer.wait_state(seeding=True, timeout=30)
    got, block = asyncio.run(_download_block(peer.port, ih, random.Random(2)))
    assert got == method
    assert block == payload.read_bytes()[PIECE:PIECE + 16384]


def test_initiator_to_transmission_encryption_required(tmp_path: Path, payload: Path,
                                                       cleanup: list[object]) -> None:
    require_binary("transmission-cli")
    torrent = make_torrent(payload, PIECE)
    ih = metainfo.parse(torrent).info_hash
    tfile = tmp_path / "t.torrent"
    tfile.write_bytes(torrent)
    port = free_port()
    proc = subprocess.Popen(
        ["transmission-cli", "-g", str(tmp_path / "cfg"), "-w", str(payload.parent),
         "-p", str(port), "-er", "-M", str(tfile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cleanup.append(proc)
    # Wait until it listens and has verified the data (it seeds only then).
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"transmission-cli exited {proc.returncode}"
        try:
            method, block = asyncio.run(_download_block(port, ih, random.Random(3)))
            break
        except (OSError, AssertionError, asyncio.TimeoutError, mse.MseError,
                asyncio.IncompleteReadError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert method == mse.CRYPTO_RC4
    assert block == payload.read_bytes()[PIECE:PIECE + 16384]
