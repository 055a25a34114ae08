"""Churn: a third of the leechers are SIGKILLed and restarted at seeded random times while
the file spreads. Every peer completes with verified bytes, restarted peers resume from the
chunks they had verified (nothing verified is fetched twice), and the report says so."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import (
    Mesh,
    MiB,
    leftovers,
    run,
    selected_backends,
    with_mesh,
    write_topology,
)

pytestmark = pytest.mark.timeout(240)

LEECHERS = 6
SIZE = 6 * MiB
CHUNK = 128 * 1024


def churn_doc(seed: int) -> tuple[dict[str, Any], list[str]]:
    """Topology with kill/start of a third of the leechers at seeded random times."""
    rng = random.Random(seed)
    victims = sorted(rng.sample(range(LEECHERS), LEECHERS // 3))
    scenario: list[dict[str, Any]] = [{"at": "0s", "fetch": {"content": "blob", "by": "leechers"}}]
    for i in victims:
        # From 3 s: the player's ~1 s polls have seen the victim holding chunks before it dies
        # (needed to check its resume), even when a loaded host makes each poll slow. By 5 s
        # nobody is complete: the seeder's 8 mbit need 6.3 s to send one copy.
        killed = rng.uniform(3.0, 5.0)
        back = killed + rng.uniform(1.5, 3.5)
        scenario.append({"at": f"{killed:.2f}s", "kill": f"leechers-{i}"})
        scenario.append({"at": f"{back:.2f}s", "start": f"leechers-{i}"})
    doc = {
        "seed": seed,
        "chunk_size": "128KiB",
        "defaults": {"link": {"up": "4mbit", "down": "40mbit"}},
        "groups": {"seeders": {"count": 1, "link": {"up": "8mbit"}},
                   "leechers": {"count": LEECHERS}},
        "content": {"blob": {"size": "6MiB", "seeders": ["seeders"]}},
        "scenario": scenario,
        "expect": {"all_complete_within": "150s"},
    }
    return doc, [f"leechers-{i}" for i in victims]


@pytest.mark.parametrize("backend", selected_backends())
def test_churn_everyone_completes_and_restarted_peers_resume(tmp_path: Path, backend: str) -> None:
    doc, victims = churn_doc(seed=41)
    topo, _ = write_topology(tmp_path, backend, "churn", doc)
    mesh = Mesh(topo, home=tmp_path / "home")
    # per victim: the most pieces its first agent process was seen holding, until the engine
    # kills it or another agent answers (told by its start time: a pid is no identity, a
    # container's new agent has the same one).
    first: dict[str, int] = {}
    born_at: dict[str, float] = {}
    restarted: set[str] = set()

    def on_sample(sample: Any) -> None:
        for v in victims:
            st = sample.statuses.get(v)
            if not st:
                continue
            born = time.time() - float(st.get("uptime") or 0.0)  # when this agent started
            # A restart moves `born` by >= 4.5 s (killed after 3 s, down >= 1.5 s); the slack
            # absorbs how late a poll's answers reach this callback on a loaded host.
            if abs(born - born_at.setdefault(v, born)) > 2.0 or v in mesh.dead:
                restarted.add(v)
            if v in restarted:
                continue
            have = max((int(t.get("have") or 0) for t in st.get("torrents", {}).values()), default=0)
            first[v] = max(have, first.get(v, 0))

    async def body() -> dict[str, Any]:
        await mesh.up()
        await mesh.play(on_sample=on_sample)
        return mesh.report()

    report = run(with_mesh(mesh, body()), 200)
    assert leftovers(backend, topo.name, tmp_path / "home") == []

    kinds = [e["kind"] for e in report["events"]]
    assert kinds.count("kill") == len(victims) and kinds.count("start") == len(victims)
    assert report["reason"] == "complete", report["problems"]
    assert report["ok"] is True, report["expect"]
    dist = report["distribution"]["blob"]
    assert dist["fetchers"] == LEECHERS and dist["verified"] == LEECHERS
    assert "redownloaded_bytes" in dist and dist["redownloaded_bytes"] == 0
    chunks = report["contents"]["blob"]["chunks"]
    assert chunks == SIZE // CHUNK
    for name, node in report["nodes"].items():
        if not name.startswith("leechers-"):
            continue
        f = node["fetches"]["blob"]
        assert f["complete"] is True and f["verified"] is True, (name, f)
        assert f["redownloaded"] == 0, (name, f)
        if name in victims:
            # It had verified chunks when it was killed and found at least those again on
            # disk; since the restart it fetched only what it lacked (+ end-game duplicates).
            resumed = f["resumed_pieces"]
            had = first[name]
            assert had > 0 and resumed is not None and resumed >= had, (name, had, f)
            # useful bytes since the restart: what it lacked, no more (waste: late end-game copies)
            since_restart = sum(f["bytes_from"].values()) - int(f.get("wasted") or 0)
            assert since_restart <= (chunks - resumed + 1) * CHUNK, (name, resumed, since_restart, f)


def test_peer_down_when_the_fetch_starts_fetches_after_restart(tmp_path: Path) -> None:
    """A peer that is dead when the fetch event fires must fetch once it is started again."""
    doc = {
        "seed": 5,
        "groups": {"seeders": {"count": 1}, "leechers": {"count": 3}},
        "content": {"blob": {"size": "2MiB", "seeders": ["seeders"]}},
        "scenario": [
            {"at": "0s", "kill": "leechers-1"},
            {"at": "1s", "fetch": {"content": "blob", "by": "leechers"}},
            {"at": "3s", "start": "leechers-1"},
        ],
        "expect": {"all_complete_within": "60s"},
    }
    topo, _ = write_topology(tmp_path, "local", "late", doc)
    mesh = Mesh(topo, home=tmp_path / "home")

    async def body() -> dict[str, Any]:
        await mesh.up()
        await mesh.play()
        return mesh.report()

    report = run(with_mesh(mesh, body()), 120)
    f = report["nodes"]["leechers-1"]["fetches"].get("blob")
    assert f is not None and f["complete"] and f["verified"], report["nodes"]["leechers-1"]
    assert report["ok"] is True, (report["reason"], report["expect"])
