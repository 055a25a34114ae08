"""`magnet: "@NAME"` contents: what the loader makes of them, what it refuses, and how the
orchestrator turns NAME's seeded content into the magnet link the fetchers get."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from orchestrator import clients
from orchestrator.dump import topology_to_yaml
from orchestrator.errors import InputError
from orchestrator.loader import load_topology_text
from orchestrator.seeding import SeededContent
from peer import metainfo
from peer.metadata import parse_magnet

TOPO = """name: t
groups:
  seeders: {count: 2}
  leechers: {count: 3}
content:
  by-magnet: {magnet: "@movie"%s}
  movie: {size: 3MiB, chunk_size: 64KiB, seeders: [seeders]}
scenario:
  - fetch: {content: by-magnet, by: leechers}
"""


def test_a_magnet_content_takes_size_chunks_and_seeders_of_the_content_it_names() -> None:
    topo = load_topology_text(TOPO % "", Path("t.yaml"))  # named before it is defined
    c = topo.content("by-magnet")
    assert (c.magnet_of, c.size, c.chunk_size) == ("movie", 3 * 2**20, 64 * 1024)
    assert c.seeders == ("seeders-0", "seeders-1")
    assert [x.name for x in topo.contents] == ["by-magnet", "movie"]  # file order kept
    assert topo.content("movie").magnet_of is None


def test_a_magnet_content_may_name_some_of_the_holders() -> None:
    topo = load_topology_text(TOPO % ", seeders: [seeders-1]", Path("t.yaml"))
    assert topo.content("by-magnet").seeders == ("seeders-1",)


def test_the_dump_of_a_magnet_content_loads_back_the_same() -> None:
    topo = load_topology_text(TOPO % "", Path("t.yaml"))
    again = load_topology_text(topology_to_yaml(topo), Path("t.yaml"))
    assert again.contents == topo.contents


def test_a_node_running_a_real_client_cannot_fetch_by_magnet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "installed", lambda name: True)
    text = (TOPO % "").replace("name: t\n", "name: t\nbackend: netns\n").replace(
        "leechers: {count: 3}", "leechers: {count: 3, client: qbittorrent}")
    with pytest.raises(InputError) as err:
        load_topology_text(text, Path("t.yaml"))
    assert err.value.line == 7
    assert "leechers-0 runs qbittorrent, which meshbed hands a metainfo, not a magnet link" \
        in err.value.message


def _seeded(tmp_path: Path) -> SeededContent:
    f = tmp_path / "movie"
    f.write_bytes(bytes(range(256)) * 1024)
    meta = metainfo.create(f, piece_length=16384, hybrid=False)
    return SeededContent(name="movie", infohash=meta.hexhash,
                         metainfo=base64.b64encode(meta.to_torrent_bytes()).decode(),
                         size=meta.length, chunks=meta.num_pieces, piece_length=16384,
                         sha256="0" * 64, seed=0, synthetic=False, path=str(f))


def test_the_magnet_link_names_the_same_infohash_and_the_mesh_tracker(tmp_path: Path) -> None:
    seeded = _seeded(tmp_path)
    mag = seeded.as_magnet("by-magnet")
    assert (mag.name, mag.infohash, mag.sha256, mag.size) == \
        ("by-magnet", seeded.infohash, seeded.sha256, seeded.size)
    assert mag.magnet is not None
    parsed = parse_magnet(mag.magnet)
    assert parsed.info_hash is not None and parsed.info_hash.hex() == seeded.infohash
    assert (parsed.name, parsed.trackers) == ("movie", [])
    tracked = mag.with_tracker("http://127.0.0.1:6969/announce")
    assert tracked.magnet is not None
    assert parse_magnet(tracked.magnet).trackers == ["http://127.0.0.1:6969/announce"]
    assert tracked.infohash == seeded.infohash
    assert seeded.with_tracker("udp://x:1/announce").magnet is None  # a metainfo content stays one
    assert SeededContent.from_state("by-magnet", mag.to_state()) == mag
