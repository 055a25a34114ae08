"""The agent over real TCP on 127.0.0.1: a hybrid torrent answers handshakes carrying its v2
infohash (truncated to 20 bytes), in plaintext and through MSE; a known address given again
(POST /peers) is dialed at once, whatever its backoff."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import pytest
from swarm_support import make_agent, sample

from peer import metainfo, mse, wire

PEER_ID = b"-XX0000-v2handshake1"


def _hybrid(tmp: Path) -> tuple[metainfo.Metainfo, Path]:
    f = tmp / "inbox" / "h.bin"
    f.parent.mkdir(parents=True)
    f.write_bytes(random.Random(3).randbytes(300_000))
    return metainfo.create(f, piece_length=65536, hybrid=True), f


@pytest.mark.timeout(30)
@pytest.mark.parametrize("use_mse", [False, True])
def test_hybrid_accepts_its_v2_infohash(tmp_path: Path, use_mse: bool) -> None:
    async def main() -> None:
        meta, path = _hybrid(tmp_path)
        assert meta.info_hash_v2 is not None
        v2 = meta.info_hash_v2[:20]
        a = make_agent(tmp_path, "seeders-0")
        await a.start()
        try:
            await a.share(meta, path)
            r, w = await asyncio.open_connection("127.0.0.1", a.wire_port)
            ours = wire.encode_handshake(v2, PEER_ID)
            if use_mse:
                init = mse.MseInitiator(v2, ours, random.Random(1), allow_plaintext=False)
                res = await mse.negotiate(init, r, w, timeout=10)
                data = res.initial_payload
                while len(data) < wire.HANDSHAKE_LEN:
                    data += res.decrypt(await asyncio.wait_for(r.read(4096), 10))
            else:
                w.write(ours)
                data = await asyncio.wait_for(r.readexactly(wire.HANDSHAKE_LEN), 10)
            assert wire.decode_handshake(data[:wire.HANDSHAKE_LEN]).info_hash == v2
            w.close()
            crypto = "rc4" if use_mse else "none"
            assert sample(a.metrics.registry, "meshbed_handshakes_total", crypto=crypto) == 1
        finally:
            await a.close()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_given_again_a_backed_off_peer_is_dialed_now(tmp_path: Path) -> None:
    async def main() -> None:
        meta, _ = _hybrid(tmp_path)
        a = make_agent(tmp_path, "leechers-0")
        await a.start()
        with socket.socket() as s:  # a port nobody listens on (yet)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            await a.fetch(meta, [("127.0.0.1", port)])
            t = a.torrents[meta.info_hash]
            kp = t.known[("127.0.0.1", port)]
            while kp.fails == 0:  # the first dial fails: nobody listens
                await asyncio.sleep(0.05)
            kp.fails, kp.next_try = 6, kp.next_try + 3600.0  # as after a long run of failures
            dialed = asyncio.Event()

            async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                dialed.set()
                w.close()

            srv = await asyncio.start_server(on_conn, "127.0.0.1", port)
            try:
                hexhash = meta.hexhash
                assert a.add_peers([("127.0.0.1", port)], hexhash) == 1
                assert kp.fails == 0
                await asyncio.wait_for(dialed.wait(), 10)  # at once, not in an hour
            finally:
                srv.close()
        finally:
            await a.close()

    asyncio.run(main())
