"""Multi-file and v2-only torrents between a meshbed agent (real process) and libtorrent on
127.0.0.1, both ways: the agent shares a directory and libtorrent downloads it, and
libtorrent seeds and the agent downloads."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.facilities import missing
from tests.peerproc import AgentProc

try:
    import libtorrent as lt
except ImportError:
    missing("libtorrent (PyPI) is not installed", module=True)

from peer import metainfo
from tests.ltpeer import LtPeer

pytestmark = pytest.mark.timeout(180)
PIECE = 64 * 1024
KINDS = ["v1", "hybrid", "v2"]


def _tree(root: Path) -> Path:
    rng = random.Random(11)
    d = root / "album"
    (d / "disc 2").mkdir(parents=True)
    for rel, size in [("01.flac", 900_000), ("cover.jpg", 70_001), ("disc 2/01.flac", 650_000),
                      ("disc 2/notes.txt", 5)]:
        (d / rel).write_bytes(rng.randbytes(size))
    return d


def _files(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for t in reversed(things):
        if isinstance(t, AgentProc):
            t.kill()
        elif isinstance(t, LtPeer):
            t.close()


@pytest.mark.parametrize("kind", KINDS)
def test_meshbed_shares_directory_libtorrent_downloads(
    tmp_path: Path, cleanup: list[object], kind: str
) -> None:
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    src = _tree(seeder.data_dir)
    seeder.start()
    meta = metainfo.create(src, piece_length=PIECE, hybrid=kind == "hybrid",
                           v2_only=kind == "v2")
    shared = seeder.ok("POST", "/share", {
        "file": "album", "metainfo": base64.b64encode(meta.to_torrent_bytes()).decode()})
    assert shared["infohash"] == meta.hexhash
    peer = LtPeer(tmp_path / "lt")
    cleanup.append(peer)
    peer.add(meta.to_torrent_bytes())
    peer.wait_state(seeding=True, timeout=120, connect=(seeder.wire,))
    assert peer.recheck_complete()
    assert _files(tmp_path / "lt" / "album") == _files(src)


@pytest.mark.parametrize("kind", KINDS)
def test_libtorrent_seeds_directory_meshbed_downloads(
    tmp_path: Path, cleanup: list[object], kind: str
) -> None:
    src = _tree(tmp_path / "lt")
    fs = lt.file_storage()
    lt.add_files(fs, str(src))
    flags = {"v1": lt.create_torrent.v1_only, "hybrid": 0, "v2": lt.create_torrent.v2_only}
    ct = lt.create_torrent(fs, PIECE, flags=flags[kind])
    lt.set_piece_hashes(ct, str(src.parent))
    torrent = bytes(lt.bencode(ct.generate()))
    peer = LtPeer(src.parent)
    cleanup.append(peer)
    peer.add(torrent)
    peer.wait_state(seeding=True, timeout=60)
    leecher = AgentProc(tmp_path, "leechers-0")
    cleanup.append(leecher)
    leecher.start()
    got: Any = leecher.ok("POST", "/fetch", {"metainfo": base64.b64encode(torrent).decode(),
                                              "peers": [peer.addr]})
    t = leecher.wait_complete(got["infohash"], 120)
    assert t["have"] == t["pieces"], t
    assert _files(leecher.data_dir / "torrents" / got["infohash"] / "album") == _files(src)
