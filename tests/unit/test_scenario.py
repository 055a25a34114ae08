"""Pure scenario logic: bootstrap peers per strategy, partition blocklists, stall verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import Endpoint
from orchestrator.mesh import Mesh
from orchestrator.model import Content, FetchEvent, Link, Node, Topology
from orchestrator.scenario import FetchState, Player
from orchestrator.seeding import SeededContent
from orchestrator.state import MeshState

pytestmark = pytest.mark.timeout(30)


def topology(strategy: str = "swarm", leechers: int = 10) -> Topology:
    nodes = (Node("s-0", "s", 0, "local", Link()),) + tuple(
        Node(f"l-{i}", "l", i, "local", Link()) for i in range(leechers))
    return Topology(
        name="t", source=None, strategy=strategy, seed=1, nodes=nodes,
        contents=(Content("c", ("s-0",), 1 << 18, size=1 << 20),),
        scenario=(FetchEvent(0.0, "c", tuple(f"l-{i}" for i in range(leechers))),),
    )


def mesh_for(topo: Topology, tmp: Path) -> Mesh:
    mesh = Mesh(topo, home=tmp)
    mesh.state = MeshState(tmp, {"mesh": "t", "token": "x", "nodes": {}})
    for i, n in enumerate(topo.nodes):
        mesh.endpoints[n.name] = Endpoint(api=f"127.0.0.1:{9000 + i}", wire=f"127.0.0.1:{10000 + i}")
        mesh.state.nodes[n.name] = {"backend": "local", "api": f"127.0.0.1:{9000 + i}",
                                    "wire": f"127.0.0.1:{10000 + i}", "group": n.group}
    mesh.contents["c"] = SeededContent(name="c", infohash="00" * 20, metainfo="bWk=", size=1 << 20,
                                       chunks=4, piece_length=1 << 18, sha256="11" * 32, seed=1,
                                       synthetic=True)
    return mesh


def test_swarm_bootstrap_is_seeders_plus_six_random_others(tmp_path: Path) -> None:
    mesh = mesh_for(topology(), tmp_path)
    player = Player(mesh)
    peers = player.bootstrap("c", "l-0")
    assert peers[0] == "127.0.0.1:10000"  # the seeder first
    assert len(peers) == 7 and len(set(peers)) == 7
    assert mesh.endpoints["l-0"].wire not in peers
    assert peers == player.bootstrap("c", "l-0")  # repeatable from the topology seed
    body = player.fetch_body("c", "l-0")
    assert body["pex"] is True and body["upload"] is True and body["sha256"] == "11" * 32


def test_client_server_fetchers_get_only_the_seeders(tmp_path: Path) -> None:
    mesh = mesh_for(topology("client-server"), tmp_path)
    body = Player(mesh).fetch_body("c", "l-3")
    assert body["peers"] == ["127.0.0.1:10000"]
    assert body["pex"] is False and body["upload"] is False


def test_blocklists_cut_between_sides_only(tmp_path: Path) -> None:
    mesh = mesh_for(topology(leechers=4), tmp_path)
    assert mesh.blocklist("l-0") == ([], [])
    mesh.partition_sides = (("s-0", "l-0"), ("l-1", "l-2"))
    assert mesh.blocklist("l-0") == (["l-1", "l-2"], ["127.0.0.1:10002", "127.0.0.1:10003"])
    assert mesh.blocklist("l-2") == (["s-0", "l-0"], ["127.0.0.1:10000", "127.0.0.1:10001"])
    assert mesh.blocklist("l-3") == ([], [])  # in no side: talks to everyone


def fetch(node: str, downloaded: int, complete: bool = False) -> FetchState:
    return FetchState(node=node, content="c", posted_wall=0.0, complete=complete,
                      verified=True if complete else None,
                      torrent={"downloaded": downloaded, "have": 1, "pieces": 4})


def test_stall_needs_the_timeline_over_and_no_bytes_for_a_while(tmp_path: Path) -> None:
    from orchestrator import scenario

    mesh = mesh_for(topology(leechers=2), tmp_path)
    player = Player(mesh)
    player.fetches = {("l-0", "c"): fetch("l-0", 100), ("l-1", "c"): fetch("l-1", 4, complete=True)}
    assert player._stalled(0.0) == []  # timeline still running
    player.timeline_done = True
    assert player._stalled(1.0) == []  # first sighting of the byte count
    assert player._stalled(1.0 + scenario.STALL_SECONDS - 1) == []
    assert player._stalled(1.0 + scenario.STALL_SECONDS) == ["l-0 (1/4)"]
    player.fetches[("l-0", "c")].torrent["downloaded"] = 200  # data moved: the clock restarts
    assert player._stalled(100.0) == []
    mesh.dead.add("l-0")  # killed for good: not a stall
    assert player._stalled(1000.0) == []


def test_clock_offset_is_measured_once(tmp_path: Path) -> None:
    mesh = mesh_for(topology(leechers=1), tmp_path)
    player = Player(mesh)
    fs = FetchState(node="l-0", content="c", posted_wall=1000.0)
    player.fetches = {("l-0", "c"): fs}

    def status(**t: Any) -> dict[str, Any]:
        return {"l-0": {"torrents": {"00" * 20: t}}}

    player._absorb(status(started_at=1100.2, complete=False), 1001.0)  # agent clock 100 s ahead
    assert fs.clock_offset == pytest.approx(100.2)
    player._absorb(status(started_at=1300.0, complete=False), 1005.0)  # restarted: ignored
    player._absorb(status(started_at=1300.0, complete=True, completed_at=1112.2, verified=True), 1013.0)
    assert fs.finished_wall == pytest.approx(1012.0)
    assert fs.complete and fs.verified is True
