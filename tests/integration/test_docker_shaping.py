"""Kernel shaping of docker nodes: the capped direction gets a tbf of exactly its rate, and a
real transfer through it never beats the cap.

Real containers, real agents, real TCP through tbf. The rate is measured from the fetcher's
received bytes over time (its GET /status), between 15 % and 85 % of the download so the
connection start and the end game do not count. tbf passes ~96 % of the rate as payload.
The cap is checked both ways it could be wrong: the qdisc's configured rate (exact) and the
measured rate (at most 10 % above it). How close a transfer comes to the cap depends on the
CPU the agents get (8.5 of 10 mbit with two simulations beside the suite), so the floor is
only a sanity bound; the precision is a bench's (docs/BENCHMARKS.md: tbf ~96 %).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from orchestrator.backends.docker import client, containers, shaping
from orchestrator.dockerlib import labels
from orchestrator.mesh import Mesh
from tests.integration.docker_support import (
    leftovers,
    mesh_name,
    require_docker,
    require_root,
    topology,
)

pytestmark = [pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(240)]

MiB = 1 << 20


def _torrent(st: Optional[dict[str, Any]]) -> dict[str, Any]:
    torrents = (st or {}).get("torrents") or {}
    return next(iter(torrents.values()), {}) if torrents else {}


async def _measure(mesh: Mesh, fetcher: str, size: int, timeout: float = 90.0) -> float:
    """Play the scenario while sampling the fetcher's bytes; bits/s over 15..85 % (on the
    fetcher's clock)."""
    play = asyncio.create_task(mesh.play())
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not play.done():
            st = (await mesh.statuses(timeout=2.0)).get(fetcher)
            t = _torrent(st)
            if t and st is not None:
                # stamped with the agent's own clock when it answered, not when the answer
                # reached us: a poll slowed by a loaded host does not skew the rate
                samples.append((float(st["uptime"]), int(t.get("downloaded") or 0)))
                if t.get("complete"):
                    break
            await asyncio.sleep(0.25)
    finally:
        await asyncio.wait([play], timeout=60)
    window = [(t, b) for t, b in samples if 0.15 * size <= b <= 0.85 * size]
    assert len(window) >= 4, f"too few samples in the window: {samples}"
    (t0, b0), (t1, b1) = window[0], window[-1]
    return (b1 - b0) * 8 / (t1 - t0)


async def _qdisc_of(mesh: str, node: str, direction: str) -> str:
    """The qdiscs shaping ``node``'s ``up`` (its eth0) or ``down`` (the host-side veth)."""
    c = client()
    try:
        pid = containers.pid(c, labels.container_name(mesh, node))
    finally:
        c.close()
    assert pid is not None
    if direction == "up":
        cmd = ["nsenter", "-t", str(pid), "-n", "tc", "qdisc", "show", "dev", "eth0"]
    else:
        cmd = ["tc", "qdisc", "show", "dev", await shaping.host_veth(pid)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout


@pytest.mark.parametrize(
    ("capped", "link", "size"),
    [
        ("seeders", {"up": "10mbit"}, 10 * MiB),  # up: tbf on the container's eth0
        ("leechers", {"down": "8mbit"}, 8 * MiB),  # down: tbf on the host-side veth
    ],
)
def test_capped_link_is_a_tbf_of_its_rate_and_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capped: str, link: dict[str, str],
    size: int,
) -> None:
    require_docker()
    require_root()
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    name = mesh_name("dshape")
    direction, spec = next(iter(link.items()))
    rate = int(spec.removesuffix("mbit")) * 1_000_000
    groups: dict[str, dict[str, Any]] = {"seeders": {"count": 1}, "leechers": {"count": 1}}
    groups[capped]["link"] = link
    topo = topology(
        tmp_path, name, groups,
        {"blob": {"size": f"{size // MiB}MiB", "seeders": ["seeders"]}},
        [{"at": "0s", "fetch": {"content": "blob", "by": "leechers"}}],
        chunk_size="256KiB",
    )

    async def go() -> tuple[float, str]:
        mesh = Mesh(topo)
        try:
            await mesh.up()
            qdisc = await _qdisc_of(name, f"{capped}-0", direction)
            measured = await _measure(mesh, "leechers-0", size)
            return measured, qdisc
        finally:
            await mesh.down()

    measured, qdisc = asyncio.run(go())
    print(f"{capped} {link}: measured {measured / 1e6:.2f} Mbit/s; {qdisc.strip()}")
    # the kernel does the capping, not the agent's emulation, at exactly the rate asked for
    assert "tbf" in qdisc and f"rate {rate // 1_000_000}Mbit" in qdisc, qdisc
    assert measured <= 1.10 * rate, f"measured {measured / 1e6:.2f} Mbit/s through a {rate / 1e6:.0f} mbit cap"
    assert measured >= 0.5 * rate, f"measured {measured / 1e6:.2f} Mbit/s for {rate / 1e6:.0f}"
    assert leftovers(name) == []
