"""Partitions: split the mesh (the seeder and half the leechers on one side), let the near
side progress while no byte crosses the split, heal; the swarm completes and the far side
reconnects across the old split (no connection stays dead)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import (
    Mesh,
    leftovers,
    run,
    selected_backends,
    with_mesh,
    write_topology,
)

pytestmark = pytest.mark.timeout(240)

# The near side completes ~4-5 s after the cut on a loaded 2-core host (polled every ~1 s);
# the heal comes twice that late, so its leechers are complete before it whatever the load.
SPLIT_AT, HEAL_AT = 1.0, 11.0
NEAR = ["leechers-0", "leechers-1", "leechers-2"]
FAR = ["leechers-3", "leechers-4", "leechers-5"]


def partition_doc() -> dict[str, Any]:
    return {
        "seed": 9,
        "chunk_size": "128KiB",
        "defaults": {"link": {"up": "8mbit", "down": "40mbit"}},
        "groups": {"seeders": {"count": 1, "link": {"up": "16mbit"}}, "leechers": {"count": 6}},
        "content": {"blob": {"size": "4MiB", "seeders": ["seeders"]}},
        "scenario": [
            {"at": "0s", "fetch": {"content": "blob", "by": "leechers"}},
            {"at": f"{SPLIT_AT}s", "partition": [["seeders", "leechers[0:3]"], ["leechers[3:]"]]},
            {"at": f"{HEAL_AT}s", "heal": True},
        ],
        "expect": {"all_complete_within": "120s"},
    }


def _torrent(st: Any) -> dict[str, Any]:
    if not st:
        return {}
    ts = list(st.get("torrents", {}).values())
    return dict(ts[0]) if ts else {}


def note_calls(mesh: Mesh, method: str, at: dict[str, float]) -> None:
    """Record in ``at`` when the engine called ``mesh.<method>`` ("METHOD called") and when it
    returned ("METHOD applied"): the scenario's times say when an event starts, applying it
    can take longer on a loaded host."""
    original = getattr(mesh, method)

    async def traced(*args: Any, **kwargs: Any) -> Any:
        at.setdefault(f"{method} called", time.time())
        result = await original(*args, **kwargs)
        at.setdefault(f"{method} applied", time.time())
        return result

    setattr(mesh, method, traced)  # the player calls it through the instance


@pytest.mark.parametrize("backend", selected_backends())
def test_partition_each_side_progresses_then_heal_completes(tmp_path: Path, backend: str) -> None:
    topo, _ = write_topology(tmp_path, backend, "split", partition_doc())
    mesh = Mesh(topo, home=tmp_path / "home")
    # (wall time once the sample's statuses were all in, the statuses)
    samples: list[tuple[float, dict[str, dict[str, Any]]]] = []
    at: dict[str, float] = {}
    note_calls(mesh, "partition", at)
    note_calls(mesh, "heal", at)

    def on_sample(sample: Any) -> None:
        samples.append((time.time(), {n: _torrent(st) for n, st in sample.statuses.items()}))

    async def body() -> tuple[dict[str, Any], bool]:
        await mesh.up()
        kernel = False

        def watch(sample: Any) -> None:
            nonlocal kernel
            kernel = kernel or mesh.kernel_partition
            on_sample(sample)

        await mesh.play(on_sample=watch)
        return mesh.report(), kernel

    report, kernel = run(with_mesh(mesh, body()), 200)
    assert leftovers(backend, topo.name, tmp_path / "home") == []
    assert report["reason"] == "complete" and report["ok"] is True, report["expect"]
    assert report["distribution"]["blob"]["redownloaded_bytes"] == 0

    # Polls answered between 2 s after the cut was in place (in-flight data has landed) and
    # the start of the heal.
    split = [(t, s) for t, s in samples if at["partition applied"] + 2.0 <= t <= at["heal called"]]
    assert len(split) >= 3, ([t - at["partition applied"] for t, _ in samples], at)
    near_side = ["seeders-0", *NEAR]
    # 1. No byte crosses the split: what the far side got from the near side stays put.
    for far in FAR:
        crossed = [sum(s[far].get("bytes_from", {}).get(n, 0) for n in near_side) for _, s in split]
        assert crossed == [crossed[0]] * len(crossed), (far, crossed)
        if not kernel:  # agents' blocklists close the connections across the split
            assert split[-1][1][far].get("peers", 0) <= len(FAR) - 1, (far, split[-1][1][far])
    # 2. The near side keeps going: its leechers complete before the heal.
    last = split[-1][1]
    for near in NEAR:
        assert last[near].get("complete") is True, (near, last[near])
    assert not all(last[far].get("complete") for far in FAR)
    # 3. After the heal the far side reconnects across the old split and gets bytes from it
    # (some far node may finish from its own side: the side as a whole must cross).
    final = report["nodes"]
    before = sum(split[-1][1][far].get("bytes_from", {}).get(n, 0) for far in FAR for n in near_side)
    after = sum(final[far]["fetches"]["blob"]["bytes_from"].get(n, 0) for far in FAR for n in near_side)
    assert after > before, (before, after)
    for far in FAR:
        assert final[far]["fetches"]["blob"]["verified"] is True


def test_dead_connections_are_dropped_and_peers_reconnect(tmp_path: Path) -> None:
    """A SIGKILLed peer's connections disappear from the others' /status peer counts at once,
    and once it is back (same address, same data dir) every peer is connected again."""
    import socket

    from peerproc import AgentProc, wait_for

    agents: list[AgentProc] = []
    try:
        seeder = AgentProc(tmp_path, "seeders-0", extra=["--up", "2mbit"]).start()
        agents.append(seeder)
        shared = seeder.share_synthetic("blob", 2 * 1024 * 1024, seed=2, piece_length=32768)
        ih = shared["infohash"]
        with socket.socket() as s:  # a free port for the victim, so it comes back on it
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        leechers = [AgentProc(tmp_path, f"leechers-{i}", extra=["--down", "4mbit"] +
                              (["--listen", f"127.0.0.1:{port}"] if i == 2 else []))
                    for i in range(3)]
        for a in leechers:
            agents.append(a.start())
        wires = [seeder.wire] + [a.wire for a in leechers]
        for a in leechers:
            a.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "sha256": shared["sha256"],
                                    "peers": [w for w in wires if w != a.wire]})

        def peers(a: AgentProc) -> int:
            t = a.torrent(ih)
            return int(t["peers"]) if t else -1

        wait_for(lambda: all(peers(a) == 3 for a in leechers), 30, "a full mesh of 4")
        victim = leechers[2]
        victim.kill()
        wait_for(lambda: all(peers(a) == 2 for a in leechers[:2]) and peers(seeder) == 2, 10,
                 "the dead peer's connections to be dropped")
        victim.start()
        assert victim.wire.endswith(f":{port}")
        wait_for(lambda: all(peers(a) == 3 for a in leechers[:2]) and peers(victim) == 3, 30,
                 "everyone to be connected again")
        for a in leechers:
            t = a.wait_complete(ih, 90)
            assert t["verified"] is True and t["redownloaded"] == 0
    finally:
        for a in agents:
            a.kill()
