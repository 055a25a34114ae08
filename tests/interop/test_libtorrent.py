"""meshbed agents (real processes) and real libtorrent peers in one swarm on 127.0.0.1."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.facilities import missing
from tests.peerproc import AgentProc, wait_for

try:
    import libtorrent  # noqa: F401
except ImportError:
    missing("libtorrent (PyPI) is not installed", module=True)

from tests.ltpeer import LtPeer, file_sha256, make_torrent

pytestmark = pytest.mark.timeout(240)
PIECE = 256 * 1024


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for t in reversed(things):
        if isinstance(t, AgentProc):
            t.kill()
        elif isinstance(t, LtPeer):
            t.close()


@pytest.mark.parametrize("hybrid", [False, True], ids=["v1", "hybrid"])
def test_meshbed_seeds_libtorrent_downloads(
    tmp_path: Path, cleanup: list[object], hybrid: bool
) -> None:
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    seeder.start()
    shared = seeder.ok("POST", "/share", {
        "synthetic": {"name": "movie.bin", "size": 6 * 1024 * 1024 + 777, "seed": 5},
        "piece_length": PIECE, "hybrid": hybrid,
    })
    lt_peer = LtPeer(tmp_path / "lt")
    cleanup.append(lt_peer)
    lt_peer.add(base64.b64decode(shared["metainfo"]))
    lt_peer.wait_state(seeding=True, timeout=90, connect=(seeder.wire,))
    assert lt_peer.recheck_complete(), "libtorrent's recheck does not say complete"
    assert file_sha256(tmp_path / "lt" / "movie.bin") == shared["sha256"]
    t = seeder.torrent(shared["infohash"])
    assert t is not None and t["uploaded"] >= shared["size"], t


@pytest.mark.parametrize("v1_only", [True, False], ids=["v1", "lt-default-hybrid"])
def test_libtorrent_seeds_meshbed_downloads(
    tmp_path: Path, cleanup: list[object], v1_only: bool
) -> None:
    src = tmp_path / "lt" / "paper.bin"
    src.parent.mkdir(parents=True)
    src.write_bytes(os.urandom(5 * 1024 * 1024 + 4321))
    torrent = make_torrent(src, PIECE, v1_only)
    lt_peer = LtPeer(src.parent)
    cleanup.append(lt_peer)
    lt_peer.add(torrent)
    lt_peer.wait_state(seeding=True, timeout=60)

    leecher = AgentProc(tmp_path, "leechers-0")
    cleanup.append(leecher)
    leecher.start()
    sha = file_sha256(src)
    got = leecher.ok("POST", "/fetch", {"metainfo": base64.b64encode(torrent).decode(),
                                         "peers": [lt_peer.addr], "sha256": sha})
    t = leecher.wait_complete(got["infohash"], 90)
    assert t["verified"] is True and t["sha256"] == sha
    assert sum(t["bytes_from"].values()) >= src.stat().st_size, t
    assert file_sha256(leecher.data_dir / "torrents" / got["infohash"] / "paper.bin") == sha
    # libtorrent updates its counters once a second.
    wait_for(lambda: lt_peer.status().total_payload_upload >= src.stat().st_size, 10,
             "libtorrent to count its upload")


def test_mixed_swarm_completes(tmp_path: Path, cleanup: list[object]) -> None:
    """1 meshbed seeder (uplink capped so leechers must trade), 2 meshbed + 2 libtorrent
    leechers."""
    seeder = AgentProc(tmp_path, "seeders-0", extra=["--up", "40mbit"])
    cleanup.append(seeder)
    seeder.start()
    shared = seeder.ok("POST", "/share", {
        "synthetic": {"name": "swarm.bin", "size": 8 * 1024 * 1024, "seed": 9},
        "piece_length": PIECE,
    })
    ih, torrent = shared["infohash"], base64.b64decode(shared["metainfo"])
    leechers = [AgentProc(tmp_path, f"leechers-{i}") for i in range(2)]
    for a in leechers:
        cleanup.append(a)
        a.start()
    lts = [LtPeer(tmp_path / f"lt-{i}") for i in range(2)]
    for p in lts:
        cleanup.append(p)
        p.add(torrent)
    everyone = [seeder.wire] + [a.wire for a in leechers] + [p.addr for p in lts]
    for a in leechers:
        a.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": everyone,
                                "sha256": shared["sha256"]})
    for p in lts:
        p.wait_state(seeding=False, timeout=30)
        for addr in everyone:
            if addr != p.addr:
                p.connect(addr)

    for a in leechers:
        t = a.wait_complete(ih, 150)
        assert t["verified"] is True, t
    for p in lts:
        p.wait_state(seeding=True, timeout=150, connect=tuple(everyone))
        assert p.recheck_complete()
        assert file_sha256(p.save_path / "swarm.bin") == shared["sha256"]
    # Leechers traded among themselves, not only with the seeder.
    traded = sum(p.status().all_time_upload for p in lts)
    traded += sum(a.known(ih)["uploaded"] for a in leechers)
    assert traded > 0
    mixed = [a.known(ih)["bytes_from"] for a in leechers]
    assert any(k != seeder.wire and k != "seeders-0" for bf in mixed for k in bf), mixed
