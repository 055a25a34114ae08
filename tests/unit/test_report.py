"""Report JSON: fixed keys, distribution time, efficiency, expectations (pure logic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import Endpoint
from orchestrator.model import Content, Expect, FetchEvent, Group, Link, Node, Topology
from orchestrator.report import build_report, check_expectations, distribution
from orchestrator.scenario import FetchState, PlayResult
from orchestrator.seeding import SeededContent
from orchestrator.state import MeshState

pytestmark = pytest.mark.timeout(30)
MiB = 1 << 20


def test_distribution_measures_from_event_to_last_finish() -> None:
    d = distribution(100.0, [110.0, 114.0, 112.0], 12.0, 40.0)
    assert d == {"seconds": 14.0, "lower_bound_seconds": 12.0, "efficiency": round(12 / 14, 3),
                 "client_server_bound_seconds": 40.0}


def test_distribution_is_unknown_when_a_fetch_did_not_finish() -> None:
    d = distribution(100.0, [110.0, None], 12.0, 40.0)
    assert d["seconds"] is None and d["efficiency"] is None
    assert distribution(None, [], None, None)["seconds"] is None


def test_expectations() -> None:
    ok, out = check_expectations(20.0, None, [10.0, 19.9], {}, True)
    assert ok and out["all_complete_within"]["met"]
    ok, out = check_expectations(20.0, None, [10.0, 20.5], {}, True)
    assert not ok and out["all_complete_within"]["worst"] == 20.5
    ok, _ = check_expectations(20.0, None, [10.0, None], {}, False)
    assert not ok
    ok, out = check_expectations(None, 0.8, [], {"a": 0.85, "b": 0.79}, True)
    assert not ok and not out["min_efficiency"]["met"]
    ok, _ = check_expectations(None, 0.8, [], {"a": 0.85}, True)
    assert ok
    ok, _ = check_expectations(None, None, [], {}, False)  # a failed fetch is never ok
    assert not ok


class FakeMesh:
    """What build_report reads of a Mesh (unit test of the pure report logic)."""

    def __init__(self, topology: Topology, tmp: Path, result: PlayResult) -> None:
        self.topology = topology
        self.state = MeshState(tmp, {"mesh": topology.name})
        self.result = result
        self.deploy_seconds = 1.5
        self.endpoints = {n.name: Endpoint(api=f"127.0.0.1:{7000 + n.index}", wire="x:1") for n in topology.nodes}
        self.contents = {"movie": SeededContent(
            name="movie", infohash="ab" * 20, metainfo="", size=32 * MiB, chunks=128,
            piece_length=256 * 1024, sha256="cd" * 32, seed=7, synthetic=True)}


def make(expect: Expect, finishes: dict[str, Any]) -> dict[str, Any]:
    link_s, link_l = Link(up_bps=40_000_000), Link(up_bps=10_000_000, down_bps=50_000_000)
    nodes = (Node("seeders-0", "seeders", 0, "local", link_s),) + tuple(
        Node(f"leechers-{i}", "leechers", i, "local", link_l) for i in range(2))
    topo = Topology(
        name="demo", source=None, nodes=nodes,
        groups=(Group("seeders", 1, "local", link_s), Group("leechers", 2, "local", link_l)),
        contents=(Content("movie", ("seeders-0",), 256 * 1024, size=32 * MiB),),
        scenario=(FetchEvent(0.0, "movie", ("leechers-0", "leechers-1")),), expect=expect,
    )
    fetches = {}
    for n, fin in finishes.items():
        fs = FetchState(node=n, content="movie", posted_wall=1000.0, finished_wall=fin,
                        complete=fin is not None, verified=True if fin is not None else None,
                        torrent={"bytes_from": {"seeders-0": 16 * MiB}, "redownloaded": 0, "resumed_pieces": 0})
        fetches[(n, "movie")] = fs
    result = PlayResult(t0=1000.0, ended=1030.0, reason="complete", fetch_started={"movie": 1000.0},
                        fetches=fetches, events=[], stuck=[], last={}, problems=[])
    return build_report(FakeMesh(topo, Path("/nonexistent"), result))  # type: ignore[arg-type]


def test_report_has_the_fixed_keys_and_values() -> None:
    r = make(Expect(all_complete_within=60.0), {"leechers-0": 1012.0, "leechers-1": 1014.2})
    assert {"name", "backend", "ok", "contents", "distribution", "nodes"} <= set(r)
    assert r["name"] == "demo" and r["backend"] == "local" and r["ok"] is True
    assert r["contents"]["movie"] == {"size": 32 * MiB, "chunks": 128, "infohash": "ab" * 20, "sha256": "cd" * 32}
    d = r["distribution"]["movie"]
    assert {"seconds", "lower_bound_seconds", "efficiency", "client_server_bound_seconds"} <= set(d)
    assert d["seconds"] == 14.2 and d["first_seconds"] == 12.0
    assert d["seeder_copies"] == 1.0  # 2 fetchers x 16 MiB from the seeder, of a 32 MiB file
    # lower bound: max(F/u_s, F/d_min, N F/(u_s+sum u_i)) = max(6.71, 5.37, 2*F/60e6=8.95)
    assert d["lower_bound_seconds"] == pytest.approx(2 * 32 * MiB * 8 / 60e6, abs=1e-3)
    assert d["efficiency"] == pytest.approx(d["lower_bound_seconds"] / 14.2, abs=1e-3)
    assert d["client_server_bound_seconds"] == pytest.approx(2 * 32 * MiB * 8 / 40e6, abs=1e-3)
    n0 = r["nodes"]["leechers-0"]
    assert n0["address"] == "127.0.0.1:7000" and n0["metrics_url"] == "http://127.0.0.1:7000/metrics"
    f = n0["fetches"]["movie"]
    assert f == {**f, "complete": True, "verified": True, "seconds": 12.0,
                 "bytes_from": {"seeders-0": 16 * MiB}}
    assert r["nodes"]["seeders-0"]["fetches"] == {}


def test_report_not_ok_when_late_or_unfinished() -> None:
    late = make(Expect(all_complete_within=13.0), {"leechers-0": 1012.0, "leechers-1": 1014.2})
    assert late["ok"] is False and late["expect"]["all_complete_within"]["met"] is False
    unfinished = make(Expect(), {"leechers-0": 1012.0, "leechers-1": None})
    assert unfinished["ok"] is False
    assert unfinished["distribution"]["movie"]["seconds"] is None
    assert unfinished["nodes"]["leechers-1"]["fetches"]["movie"]["verified"] is False


def _row(t: float, node: str, uploaded: int, up: bool = True) -> dict[str, Any]:
    return {"t": t, "node": node, "up": up, "contents": {"movie": {"uploaded": uploaded}}}


def test_utilisation_is_upload_counters_over_capacity_per_second() -> None:
    from orchestrator.report import utilisation

    caps = {"a": 8_000_000, "b": 8_000_000}  # 1 MB/s each
    samples = [_row(0.0, "a", 0), _row(0.0, "b", 0),
               _row(1.0, "a", 1_000_000), _row(1.0, "b", 0),  # half the capacity used
               _row(2.0, "a", 2_000_000), _row(2.0, "b", 0, up=False),  # b down: only a's capacity
               _row(4.0, "a", 4_000_000)]
    u = utilisation(samples, "movie", caps)
    assert u[0] == 0.0 and u[1] == 0.5
    assert u[2] == 1.0  # a sent 1 MB/s of its own 1 MB/s
    assert u[3] == u[2]  # a second without a poll repeats the one before
    assert u[4] == 1.0
    assert utilisation(samples, "movie", {"a": None, "b": 1}) == []  # uncapped: no finite capacity
    assert utilisation([], "movie", caps) == []


def test_utilisation_ignores_a_counter_reset_after_a_restart() -> None:
    from orchestrator.report import utilisation

    samples = [_row(0.0, "a", 5_000_000), _row(1.0, "a", 6_000_000, up=False), _row(2.0, "a", 100)]
    assert utilisation(samples, "movie", {"a": 8_000_000}) == [0.0, 0.0, 0.0]
