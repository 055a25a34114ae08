"""netns backend against the real kernel: addressing, agents, shaping, partition, teardown."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from orchestrator.backends.netns import NetnsBackend
from orchestrator.backends.netns.bridge import NODE_DEV, node_mac
from orchestrator.model import Link
from tests.contract.harness.netns import leftovers
from tests.integration.netns_support import (
    iperf_bps,
    make_ctx,
    nodes,
    require_root,
)

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]
MBIT = 1_000_000


def _status(api: str) -> dict:
    with urllib.request.urlopen(f"http://{api}/status", timeout=2) as resp:
        return json.loads(resp.read())


async def _wait_status(api: str, timeout: float = 60.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncio.to_thread(_status, api)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


def _can_connect(ns: str, ip: str, port: int) -> bool:
    """A TCP connect from inside ``ns`` (bash /dev/tcp, 2 s cap)."""
    res = subprocess.run(
        ["ip", "netns", "exec", ns, "timeout", "2", "bash", "-c", f"exec 3<>/dev/tcp/{ip}/{port}"],
        capture_output=True, timeout=10)
    return res.returncode == 0


def test_agents_reachable_partition_and_clean_teardown(tmp_path: Path) -> None:
    require_root()
    mesh = "nstest-agents"
    ctx = make_ctx(tmp_path, mesh)
    backend = NetnsBackend(ctx)
    group = nodes(3)

    async def scenario() -> None:
        try:
            await backend.prepare(group)
            eps = [await backend.deploy(n) for n in group]
            assert len({e.api for e in eps}) == 3
            for node, ep in zip(group, eps):
                st = await _wait_status(ep.api)
                assert st["node"] == node.name
                assert ep.api.endswith(":7000") and ep.wire.endswith(":6881")
            ns = [ctx.state["nodes"][n.name]["ns"] for n in group]
            ips = [ctx.state["nodes"][n.name]["ip"] for n in group]
            assert _can_connect(ns[0], ips[1], 6881)
            # 0 | 1 cut; 2 in no side keeps talking to both; the host still reaches all.
            assert await backend.partition([[group[0].name], [group[1].name]])
            assert not _can_connect(ns[0], ips[1], 6881)
            assert not _can_connect(ns[1], ips[0], 6881)
            assert _can_connect(ns[0], ips[2], 6881)
            assert _can_connect(ns[2], ips[1], 6881)
            for ep in eps:
                await _wait_status(ep.api, 5)
            await backend.heal()
            assert _can_connect(ns[0], ips[1], 6881)
            # kill keeps the data dir; start brings the agent back at the same address.
            await backend.kill(group[0])
            with pytest.raises(OSError):
                _status(eps[0].api)
            ep0 = await backend.start(group[0])
            assert ep0 == eps[0]
            await _wait_status(ep0.api)
        finally:
            await backend.teardown()

    asyncio.run(scenario())
    assert leftovers(_Named(mesh, tmp_path)) == []
    assert ctx.state == {}
    asyncio.run(backend.teardown())  # idempotent


def _neighbours(ns: str | None, dev: str) -> dict[str, tuple[str, list[str]]]:
    cmd = ["ip", *(["-n", ns] if ns else []), "-j", "neigh", "show", "dev", dev]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                                    check=True).stdout or "[]")
    return {e["dst"]: (e.get("lladdr", ""), e.get("state", [])) for e in out}


def test_neighbours_are_pinned_for_nodes_added_later_too(tmp_path: Path) -> None:
    """Every node knows every other node's and the host's MAC from the start (no ARP to
    lose when dozens of peers dial at once), the host knows every node's, and the bridge's
    own MAC stays fixed as ports are added."""
    require_root()
    mesh = "nstest-neigh"
    ctx = make_ctx(tmp_path, mesh)
    backend = NetnsBackend(ctx)
    group = nodes(3)

    async def scenario() -> None:
        try:
            await backend.prepare(group[:2])
            await backend.prepare(group[2:])  # a later call: the first two learn the third
            recs = [ctx.state["nodes"][n.name] for n in group]
            br, host_ip = ctx.state["bridge"], ctx.state["host_ip"]
            assert Path(f"/sys/class/net/{br}/address").read_text().strip() == node_mac(host_ip)
            on_host = _neighbours(None, br)
            for rec in recs:
                assert on_host[rec["ip"]] == (node_mac(rec["ip"]), ["PERMANENT"])
                seen = _neighbours(rec["ns"], NODE_DEV)
                others = {r["ip"]: node_mac(r["ip"]) for r in recs if r is not rec}
                others[host_ip] = node_mac(host_ip)
                assert seen == {ip: (mac, ["PERMANENT"]) for ip, mac in others.items()}
            eps = [await backend.deploy(n) for n in group]
            for ep in eps:
                await _wait_status(ep.api)
            assert _can_connect(recs[0]["ns"], recs[2]["ip"], 6881)
            # the connect used the pinned entry: nothing was learned by ARP
            assert set(_neighbours(recs[0]["ns"], NODE_DEV)) == {recs[1]["ip"], recs[2]["ip"],
                                                                 host_ip}
        finally:
            await backend.teardown()

    asyncio.run(scenario())
    assert leftovers(_Named(mesh, tmp_path)) == []


class _Named:
    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home


def test_tbf_shaping_accuracy(tmp_path: Path) -> None:
    """Up caps on the node side, down caps on the bridge side, measured with iperf3."""
    require_root("iperf3")
    mesh = "nstest-shape"
    ctx = make_ctx(tmp_path, mesh)
    backend = NetnsBackend(ctx)
    capped = nodes(1, Link(up_bps=10 * MBIT, down_bps=20 * MBIT), group="capped")
    free = nodes(1, group="free")

    async def scenario() -> None:
        try:
            await backend.prepare(capped + free)
            a = ctx.state["nodes"]["capped-0"]
            b = ctx.state["nodes"]["free-0"]
            up = await asyncio.to_thread(iperf_bps, b["ns"], b["ip"], a["ns"])
            down = await asyncio.to_thread(iperf_bps, a["ns"], a["ip"], b["ns"])
            assert abs(up - 10 * MBIT) / (10 * MBIT) < 0.10, up
            assert abs(down - 20 * MBIT) / (20 * MBIT) < 0.10, down
            # set_link changes the cap in place; None removes it.
            applied = await backend.set_link(capped[0], Link(up_bps=5 * MBIT, down_bps=None))
            assert {"up_bps", "down_bps"} <= applied
            up = await asyncio.to_thread(iperf_bps, b["ns"], b["ip"], a["ns"])
            assert abs(up - 5 * MBIT) / (5 * MBIT) < 0.10, up
            down = await asyncio.to_thread(iperf_bps, a["ns"], a["ip"], b["ns"], 2)
            assert down > 100 * MBIT, down
        finally:
            await backend.teardown()

    asyncio.run(scenario())
    assert leftovers(_Named(mesh, tmp_path)) == []
