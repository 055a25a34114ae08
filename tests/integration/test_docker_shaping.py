"""Kernel shaping of docker nodes: a capped link measures within 10 % of its rate.

Real containers, real agents, real TCP through tbf. The rate is measured from the fetcher's
received bytes over time (its GET /status), between 15 % and 85 % of the download so the
connection start and the end game do not count. tbf passes ~96 % of the rate as payload.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from orchestrator.backends.docker import client, containers
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


def _qdisc_of(mesh: str, node: str) -> str:
    c = client()
    try:
        pid = containers.pid(c, labels.container_name(mesh, node))
    finally:
        c.close()
    assert pid is not None
    return subprocess.run(["nsenter", "-t", str(pid), "-n", "tc", "qdisc", "show", "dev", "eth0"],
                          capture_output=True, text=True, timeout=10).stdout


@pytest.mark.parametrize(
    ("capped", "link", "size"),
    [
        ("seeders", {"up": "10mbit"}, 10 * MiB),  # up: tbf on the container's eth0
        ("leechers", {"down": "8mbit"}, 8 * MiB),  # down: tbf on the host-side veth
    ],
)
def test_capped_link_measures_within_10_percent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capped: str, link: dict[str, str],
    size: int,
) -> None:
    require_docker()
    require_root()
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    name = mesh_name("dshape")
    rate = int(next(iter(link.values())).removesuffix("mbit")) * 1_000_000
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
            qdisc = _qdisc_of(name, "seeders-0")
            measured = await _measure(mesh, "leechers-0", size)
            return measured, qdisc
        finally:
            await mesh.down()

    measured, seeder_qdisc = asyncio.run(go())
    print(f"{capped} {link}: measured {measured / 1e6:.2f} Mbit/s")
    if capped == "seeders":
        # the kernel does the capping, not the agent's emulation
        assert "tbf" in seeder_qdisc and "10Mbit" in seeder_qdisc, seeder_qdisc
    assert abs(measured - rate) / rate < 0.10, f"measured {measured / 1e6:.2f} Mbit/s for {rate / 1e6:.0f}"
    assert leftovers(name) == []
