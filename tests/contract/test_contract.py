"""One suite, every backend: deploy/teardown, fetch, kill+resume, link change, partition.

Real agents, real TCP; small files (4-12 MiB) and 2-4 nodes so each test ends in seconds.
Every test tears its mesh down and checks the backend's leftovers are empty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from types import ModuleType
from typing import Any, Callable, Optional

import pytest

from orchestrator.mesh import Mesh
from orchestrator.model import Topology

pytestmark = pytest.mark.timeout(180)

MiB = 1 << 20


def torrent(st: Optional[dict[str, Any]], infohash: str) -> dict[str, Any]:
    return ((st or {}).get("torrents") or {}).get(infohash) or {}


async def run_mesh(
    topo: Topology, mod: ModuleType,
    observe: Optional[Callable[[Mesh], Awaitable[Any]]] = None,
) -> tuple[dict[str, Any], Any]:
    """up, play (with ``observe`` running alongside), report, down; check nothing is left."""
    mesh = Mesh(topo)
    observed: Any = None
    play: Optional[asyncio.Task[Any]] = None
    try:
        await mesh.up()
        play = asyncio.create_task(mesh.play())
        if observe is not None:
            observed = await observe(mesh)
        await asyncio.wait_for(asyncio.shield(play), timeout=120)
        report = mesh.report()
    finally:
        if play is not None and not play.done():
            play.cancel()
            await asyncio.gather(play, return_exceptions=True)
        await mesh.down()
    assert mod.leftovers(topo.name) == []
    assert mesh.state is not None and not mesh.state.dir.exists()
    return report, observed


def when_applied(mesh: Mesh, method: str, started: bool = False) -> asyncio.Event:
    """An event set once the engine's ``mesh.<method>(...)`` has returned (or, with
    ``started``, once it was called). A scenario's ``at:`` says when an event starts; on a
    loaded host applying it (tc, iptables in a container) can take seconds, so the tests
    observe from the moment it took effect instead of from a fixed time."""
    done = asyncio.Event()
    original = getattr(mesh, method)

    async def traced(*args: Any, **kwargs: Any) -> Any:
        if started:
            done.set()
        result = await original(*args, **kwargs)
        done.set()
        return result

    setattr(mesh, method, traced)  # the player calls it through the instance
    return done


def test_deploy_and_teardown_leave_nothing(backend_harness: ModuleType, make_topology: Any) -> None:
    topo = make_topology(
        groups={"seeders": {"count": 1}, "leechers": {"count": 2}},
        content={"blob": {"size": "4MiB", "seeders": ["seeders"]}},
        scenario=[],
    )

    async def go() -> None:
        mesh = Mesh(topo)
        try:
            await mesh.up()
            statuses = await mesh.statuses()
            assert all(st is not None for st in statuses.values()), statuses
            assert {st["node"] for st in statuses.values() if st} == {n.name for n in topo.nodes}
            seeded = mesh.contents["blob"].infohash
            assert torrent(statuses["seeders-0"], seeded).get("complete") is True
            # The leftovers probe must see a running mesh, or its empty answer proves nothing.
            assert backend_harness.leftovers(topo.name) != []
        finally:
            await mesh.down()
        await mesh.down()  # idempotent
        assert backend_harness.leftovers(topo.name) == []
        assert mesh.state is not None and not mesh.state.dir.exists()

    asyncio.run(go())


def test_fetch_completes_and_verifies(backend_harness: ModuleType, make_topology: Any) -> None:
    topo = make_topology(
        groups={"seeders": {"count": 1}, "leechers": {"count": 3}},
        content={"blob": {"size": "6MiB", "seeders": ["seeders"]}},
        scenario=[{"at": "0s", "fetch": {"content": "blob", "by": "leechers"}}],
        expect={"all_complete_within": "60s"},
        defaults={"link": {"up": "40mbit", "down": "80mbit"}},
    )
    report, _ = asyncio.run(run_mesh(topo, backend_harness))
    assert report["ok"] is True, report
    assert report["contents"]["blob"]["size"] == 6 * MiB
    for i in range(3):
        f = report["nodes"][f"leechers-{i}"]["fetches"]["blob"]
        assert f["complete"] and f["verified"]
        assert sum(f["bytes_from"].values()) >= 6 * MiB
    d = report["distribution"]["blob"]
    assert d["seconds"] > 0 and d["lower_bound_seconds"] > 0 and d["efficiency"] > 0


def test_kill_and_start_resume(backend_harness: ModuleType, make_topology: Any) -> None:
    topo = make_topology(
        groups={"seeders": {"count": 1, "link": {"up": "16mbit"}}, "leechers": {"count": 2}},
        content={"blob": {"size": "8MiB", "seeders": ["seeders"]}},
        scenario=[
            {"at": "0s", "fetch": {"content": "blob", "by": "leechers"}},
            {"at": "2s", "kill": "leechers[0]"},
            {"at": "4s", "start": "leechers[0]"},
        ],
        expect={"all_complete_within": "90s"},
        defaults={"link": {"up": "16mbit", "down": "100mbit"}},
    )
    report, _ = asyncio.run(run_mesh(topo, backend_harness))
    assert report["ok"] is True, report
    f = report["nodes"]["leechers-0"]["fetches"]["blob"]
    assert f["verified"] is True
    assert f["resumed_pieces"] > 0, f
    # Pieces found on disk are never fetched again (stray end-game blocks count as "wasted").
    assert f["redownloaded"] == 0, f
    kinds = [e["kind"] for e in report["events"]]
    assert kinds == ["fetch", "kill", "start"]


def test_link_change_takes_effect(backend_harness: ModuleType, make_topology: Any) -> None:
    cap_bps = 8_000_000
    topo = make_topology(
        groups={"seeders": {"count": 1, "link": {"up": "32mbit"}}, "leechers": {"count": 1}},
        content={"blob": {"size": "12MiB", "seeders": ["seeders"]}},
        scenario=[
            {"at": "0s", "fetch": {"content": "blob", "by": "leechers"}},
            {"at": "1s", "link": {"nodes": "seeders", "up": "8mbit"}},
        ],
        expect={"all_complete_within": "60s"},
    )

    async def observe(mesh: Mesh) -> list[tuple[float, float, int]]:
        changed = when_applied(mesh, "apply_link")
        applied_at: Optional[float] = None
        infohash = mesh.contents["blob"].infohash
        size = mesh.contents["blob"].size
        # (seconds since the change was applied when the poll was sent, the leecher's own
        # clock when it answered, bytes): the agent's clock, not the time its answer reached
        # us, so a slow answer on a loaded host does not skew the rate.
        samples: list[tuple[float, float, int]] = []
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if applied_at is None and changed.is_set():
                applied_at = time.monotonic()
            since = -1.0 if applied_at is None else time.monotonic() - applied_at
            st = await mesh.client("leechers-0").status()
            got = int(torrent(st, infohash).get("downloaded") or 0)
            samples.append((since, float(st["uptime"]), got))
            if got >= 0.9 * size:
                break
            await asyncio.sleep(0.25)
        return samples

    report, samples = asyncio.run(run_mesh(topo, backend_harness, observe))
    assert report["ok"] is True, report
    # Steady state under the new cap: from 1 s after the change took effect to 90 % of the file.
    window = [(t, b) for since, t, b in samples if since >= 1.0]
    assert len(window) >= 8, samples
    (t1, b1), (t2, b2) = window[0], window[-1]
    measured_bps = (b2 - b1) * 8 / (t2 - t1)
    assert abs(measured_bps - cap_bps) <= 0.15 * cap_bps, (measured_bps, samples)


def test_partition_stops_traffic_and_heal_restores(backend_harness: ModuleType, make_topology: Any) -> None:
    topo = make_topology(
        groups={"seeders": {"count": 1, "link": {"up": "8mbit"}}, "leechers": {"count": 2}},
        content={"blob": {"size": "8MiB", "seeders": ["seeders"]}},
        scenario=[
            {"at": "0s", "fetch": {"content": "blob", "by": "leechers"}},
            {"at": "1s", "partition": [["seeders"], ["leechers"]]},
            # 8 s after the cut: the observation below (applied + 1 s + 3 s + two polls) ends
            # well before, even when applying the cut takes a few seconds on a loaded host.
            {"at": "9s", "heal": True},
        ],
        expect={"all_complete_within": "90s"},
    )

    async def observe(mesh: Mesh) -> dict[str, Any]:
        cut = when_applied(mesh, "partition")
        healing = when_applied(mesh, "heal", started=True)
        infohash = mesh.contents["blob"].infohash
        await asyncio.wait_for(cut.wait(), 60)
        await asyncio.sleep(1.0)  # in-flight data drains
        before = await mesh.statuses()
        await asyncio.sleep(3.0)
        after = await mesh.statuses()
        during_heal = healing.is_set()

        def from_seeder(sts: dict[str, Any]) -> int:
            return sum(int(torrent(sts[f"leechers-{i}"], infohash).get("bytes_from", {}).get("seeders-0", 0))
                       for i in range(2))

        return {
            "healed_too_early": during_heal,
            "seeder_sent": (torrent(before["seeders-0"], infohash).get("uploaded"),
                            torrent(after["seeders-0"], infohash).get("uploaded")),
            "from_seeder": (from_seeder(before), from_seeder(after)),
            "have": [int(torrent(before[f"leechers-{i}"], infohash).get("have") or 0) for i in range(2)],
            "pieces": mesh.contents["blob"].chunks,
        }

    report, seen = asyncio.run(run_mesh(topo, backend_harness, observe))
    assert not seen["healed_too_early"]
    assert seen["seeder_sent"][0] == seen["seeder_sent"][1], seen
    assert seen["from_seeder"][0] == seen["from_seeder"][1], seen
    assert min(seen["have"]) < seen["pieces"], seen  # the fetch was still active across the cut
    assert report["ok"] is True, report  # heal restored traffic: every fetch completed
    assert [e["kind"] for e in report["events"]] == ["fetch", "partition", "heal"]
