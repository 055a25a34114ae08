"""A whole swarm in one process: 1 seeder + 12 leechers over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from swarm_support import addr, make_agent, make_content, sample, wait_complete

MiB = 1 << 20


@pytest.mark.timeout(90)
def test_seeder_and_twelve_leechers_all_complete_verified(tmp_path: Path) -> None:
    async def scenario() -> None:
        content = make_content(tmp_path, 48 * MiB, 256 * 1024)
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=200)
        leechers = [
            make_agent(tmp_path, f"leechers-{i}", up_mbit=80, down_mbit=400) for i in range(12)
        ]
        agents = [seeder, *leechers]
        try:
            for a in agents:
                await a.start()
            await seeder.share(content.meta, content.path)
            for a in leechers:  # only the seeder is given: the rest comes from PEX
                await a.fetch(content.meta, [addr(seeder)], sha256=content.sha256)
            await wait_complete(leechers, content.meta, timeout=70)
            h = content.meta.hexhash
            for a in leechers:
                st = a.status()["torrents"][h]
                assert st["complete"] and st["verified"] is True, (a.node, st)
                assert st["redownloaded"] == 0
                sources = [k for k, v in st["bytes_from"].items() if v > 0]
                assert len(sources) >= 3, (a.node, st["bytes_from"])
                assert all(not k.startswith("127.") for k in sources)  # meshbed node names
                assert sum(st["bytes_from"].values()) >= content.meta.length
                assert (tmp_path / a.node / "torrents" / h / "movie").read_bytes() == \
                    content.path.read_bytes()
                reg = a.metrics.registry
                assert sample(reg, "meshbed_pieces_held", content="movie") == 192
                assert sample(reg, "meshbed_completion_ratio", content="movie") == 1.0
                assert sample(reg, "meshbed_bytes_received_total", content="movie") >= 48 * MiB
                assert sample(reg, "meshbed_piece_fetch_duration_seconds_count",
                              content="movie") == 192
                # late end-game copies are "wasted", never "redownloaded"; the lazy end game
                # keeps them small
                assert sample(reg, "meshbed_wasted_bytes_total", content="movie") == st["wasted"]
                assert st["downloaded"] >= content.meta.length + st["wasted"]
                assert st["wasted"] <= content.meta.length // 10, st["wasted"]
            # leechers served each other: the seeder sent far fewer than 12 copies
            seeder_sent = seeder.status()["torrents"][h]["uploaded"]
            assert seeder_sent < 8 * content.meta.length, seeder_sent / content.meta.length
            assert seeder.status()["torrents"][h]["rarest_copies"] is not None
        finally:
            for a in agents:
                await a.close()

    asyncio.run(scenario())


@pytest.mark.timeout(90)
def test_leecher_restarted_mid_fetch_resumes_without_refetching(tmp_path: Path) -> None:
    async def scenario() -> None:
        content = make_content(tmp_path, 24 * MiB, 256 * 1024)
        h = content.meta.hexhash
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=64)
        leecher = make_agent(tmp_path, "leechers-0")
        await seeder.start()
        await leecher.start()
        try:
            await seeder.share(content.meta, content.path)
            await leecher.fetch(content.meta, [addr(seeder)], sha256=content.sha256)
            t = leecher.torrents[content.meta.info_hash]
            for _ in range(300):
                if t.picker.have_count >= 30:
                    break
                await asyncio.sleep(0.05)
            assert 30 <= t.picker.have_count < content.meta.num_pieces
            await leecher.close()
            had = t.picker.have_count
            # same data dir, new agent: the torrent is found on disk and resumed (no fetch call)
            again = make_agent(tmp_path, "leechers-0")
            leecher = again
            await again.start()
            st = again.status()["torrents"][h]
            assert st["resumed_pieces"] >= had - 2  # a piece in the journal queue may be lost
            assert st["have"] == st["resumed_pieces"]
            await wait_complete([again], content.meta, timeout=60)
            st = again.status()["torrents"][h]
            assert st["verified"] is True
            assert st["redownloaded"] == 0
            missing = content.meta.num_pieces - st["resumed_pieces"]
            # only the missing pieces came over the wire again (end-game duplicates aside)
            assert st["downloaded"] <= (missing + 4) * content.meta.piece_length
            assert (tmp_path / "leechers-0" / "torrents" / h / "movie").read_bytes() == \
                content.path.read_bytes()
        finally:
            await seeder.close()
            await leecher.close()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_client_server_fetchers_never_upload_and_stick_to_given_peers(tmp_path: Path) -> None:
    async def scenario() -> None:
        content = make_content(tmp_path, 8 * MiB, 256 * 1024)
        h = content.meta.hexhash
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=200)
        fetchers = [make_agent(tmp_path, f"fetchers-{i}") for i in range(3)]
        agents = [seeder, *fetchers]
        try:
            for a in agents:
                await a.start()
            await seeder.share(content.meta, content.path)
            for a in fetchers:
                await a.fetch(content.meta, [addr(seeder)], pex=False, upload=False,
                              sha256=content.sha256)
            await wait_complete(fetchers, content.meta, timeout=45)
            for a in fetchers:
                st = a.status()["torrents"][h]
                assert st["verified"] is True and st["upload"] is False
                assert st["uploaded"] == 0 and st["bytes_to"] == {}
                assert set(st["bytes_from"]) == {"seeders-0"}
                assert set(a.torrents[content.meta.info_hash].known) == {addr(seeder)}
            assert seeder.status()["torrents"][h]["uploaded"] >= 3 * content.meta.length
        finally:
            for a in agents:
                await a.close()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_ordinary_16k_blocks_when_peers_are_not_meshbed(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the meshbed handshake key every request is 16 KiB, so pieces are put together
    from many blocks, often from several peers (the path real clients take)."""
    from peer import agent, extensions, wire
    from peer.core import PeerState, SwarmCore

    meshbed_handshake = extensions.local_handshake

    def plain_handshake(**kw: object) -> extensions.ExtHandshake:
        h = meshbed_handshake(**kw)  # type: ignore[arg-type]
        return extensions.ExtHandshake(m=h.m, port=h.port, client=h.client, reqq=h.reqq)

    monkeypatch.setattr(agent.ext, "local_handshake", plain_handshake)
    sizes: list[int] = []
    on_request = SwarmCore._on_request

    def spy(self: SwarmCore, c: PeerState, msg: wire.Request, now: float) -> None:
        sizes.append(msg.length)
        on_request(self, c, msg, now)

    monkeypatch.setattr(SwarmCore, "_on_request", spy)

    async def scenario() -> None:
        content = make_content(tmp_path, 6 * MiB + 12345, 256 * 1024)
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=100)
        leechers = [make_agent(tmp_path, f"leechers-{i}", up_mbit=50) for i in range(4)]
        agents = [seeder, *leechers]
        try:
            for a in agents:
                await a.start()
            await seeder.share(content.meta, content.path)
            for a in leechers:
                await a.fetch(content.meta, [addr(seeder)], sha256=content.sha256)
            await wait_complete(leechers, content.meta, timeout=45)
            for a in leechers:
                st = a.status()["torrents"][content.meta.hexhash]
                assert st["verified"] is True and st["redownloaded"] == 0
                assert all(not k.isalpha() for k in st["bytes_from"])  # ip:port keys
        finally:
            for a in agents:
                await a.close()

    asyncio.run(scenario())
    assert sizes and max(sizes) == 16 * 1024


@pytest.mark.timeout(90)
def test_client_server_survives_a_seeder_that_chokes_without_rejecting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (client-server hang): fetchers (upload=False, only the seeder known) behind
    a seeder with 1 upload slot + 1 optimistic that rotates its slots and, unlike BEP 6 asks,
    drops queued requests on choke without a Reject. The requests it held must become
    re-requestable (choke grace / unchoke), and a snubbed sole source must still be asked:
    before the fix they waited for the 30 s snub, after which the fetcher never asked the
    seeder again and stalled for good."""
    from peer import wire
    from peer.core import PeerState, choking, requests

    def choke_silently(self: choking.Choking, c: PeerState, choke: bool, now: float) -> None:
        if choke == c.am_choking or c.closed:
            return
        c.am_choking = choke
        c.choke_since = now
        c.drain_queue()  # no Reject: a "clean" fast peer that just forgets them
        self.core.send(c, [wire.Choke() if choke else wire.Unchoke()])

    monkeypatch.setattr(choking.Choking, "set_choking", choke_silently)
    monkeypatch.setattr(requests, "SNUB_SECONDS", 4.0)
    monkeypatch.setattr(choking, "CHOKE_INTERVAL", 2.0)  # rotate every 2 s, not 10 s
    monkeypatch.setattr(choking, "OPTIMISTIC_INTERVAL", 2.0)

    async def scenario() -> None:
        content = make_content(tmp_path, 3 * MiB, 64 * 1024)
        h = content.meta.hexhash
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=16, upload_slots=1)
        fetchers = [make_agent(tmp_path, f"fetchers-{i}", down_mbit=50) for i in range(6)]
        agents = [seeder, *fetchers]
        try:
            for a in agents:
                await a.start()
            await seeder.share(content.meta, content.path)
            for a in fetchers:
                await a.fetch(content.meta, [addr(seeder)], pex=False, upload=False,
                              sha256=content.sha256)
            await wait_complete(fetchers, content.meta, timeout=70)
            for a in fetchers:
                st = a.status()["torrents"][h]
                assert st["verified"] is True and st["redownloaded"] == 0, (a.node, st)
                assert set(st["bytes_from"]) == {"seeders-0"}
        finally:
            for a in agents:
                await a.close()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_failed_uploader_closes_the_connection_and_the_fetcher_reconnects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection whose upload task died used to keep reading requests it never answered:
    its only fetcher waited for the snub and then stalled for good."""
    from peer import torrent

    real_read = torrent.Torrent.read_block
    failed: list[int] = []

    async def read_once_broken(self: torrent.Torrent, index: int, begin: int,
                               length: int) -> bytes:
        if not failed:
            failed.append(index)
            raise RuntimeError("injected read failure")
        return await real_read(self, index, begin, length)

    monkeypatch.setattr(torrent.Torrent, "read_block", read_once_broken)

    async def scenario() -> None:
        content = make_content(tmp_path, 4 * MiB, 256 * 1024)
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=64)
        fetcher = make_agent(tmp_path, "fetchers-0")
        try:
            for a in (seeder, fetcher):
                await a.start()
            await seeder.share(content.meta, content.path)
            await fetcher.fetch(content.meta, [addr(seeder)], pex=False, upload=False,
                                sha256=content.sha256)
            await wait_complete([fetcher], content.meta, timeout=25)
            st = fetcher.status()["torrents"][content.meta.hexhash]
            assert failed and st["verified"] is True and st["redownloaded"] == 0
        finally:
            await seeder.close()
            await fetcher.close()

    asyncio.run(scenario())
