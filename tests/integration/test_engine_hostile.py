"""Hostile peers inside a real swarm: they are dropped or banned, everyone still completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from swarm_support import addr, make_agent, make_content, sample, wait_complete

MiB = 1 << 20


@pytest.mark.timeout(90)
def test_corrupt_lying_malformed_and_stalling_peers_do_not_harm_the_swarm(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        content = make_content(tmp_path, 16 * MiB, 256 * 1024)
        h = content.meta.hexhash
        seeder = make_agent(tmp_path, "seeders-0", up_mbit=80)
        hostile = {
            mode: make_agent(tmp_path, f"{mode}-0", hostile=mode)
            for mode in ("corrupt", "lie", "malformed", "stall")
        }
        leechers = [make_agent(tmp_path, f"leechers-{i}") for i in range(4)]
        agents = [seeder, *hostile.values(), *leechers]
        try:
            for a in agents:
                await a.start()
            await seeder.share(content.meta, content.path)
            for mode in ("corrupt", "malformed", "stall"):
                await hostile[mode].share(content.meta, content.path)
            # the liar holds nothing but claims everything
            await hostile["lie"].fetch(content.meta, [], pex=False)
            bootstrap = [addr(seeder)] + [addr(a) for a in hostile.values()]
            for a in leechers:
                await a.fetch(content.meta, bootstrap, sha256=content.sha256)
            await wait_complete(leechers, content.meta, timeout=70)
            banned = mismatches = frames = 0.0
            for a in leechers:
                st = a.status()["torrents"][h]
                assert st["verified"] is True and st["redownloaded"] == 0
                assert (tmp_path / a.node / "torrents" / h / "movie").read_bytes() == \
                    content.path.read_bytes()
                for bad in ("corrupt-0", "lie-0"):
                    if st["bytes_from"].get(bad):
                        assert bad in a.bans.nodes, (a.node, bad, st["bytes_from"])
                # nothing left connected to a banned or malformed peer
                assert not {c.node for c in a.torrents[content.meta.info_hash].conns.values()} \
                    & {"corrupt-0", "lie-0", "malformed-0"}
                reg = a.metrics.registry
                banned += sample(reg, "meshbed_banned_peers_total")
                mismatches += sample(reg, "meshbed_rejected_pieces_total", reason="hash_mismatch")
                frames += sample(reg, "meshbed_protocol_errors_total", reason="frame_too_large")
                assert st["rejected"].get("hash_mismatch", 0) == sample(
                    reg, "meshbed_rejected_pieces_total", reason="hash_mismatch")
            assert banned >= 2  # the corrupt one and the liar were each banned by someone
            assert mismatches >= 2
            assert frames >= len(leechers)  # every leecher dialed the malformed peer
        finally:
            for a in agents:
                await a.close()

    asyncio.run(scenario())
