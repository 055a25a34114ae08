"""Status polling at 1,000 nodes of the local backend: real agents (forked by the mesh's
fork server, ~7 MB each), at most STATUS_CONCURRENCY requests in flight, each agent's
connection opened once and kept alive across polls (seen from the kernel's socket table, not
only from the pool's own count).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import mesh as meshmod
from orchestrator.mesh import Mesh

pytestmark = pytest.mark.timeout(600)
NODES = 1000
TOPOLOGY = """\
name: {name}
backend: local
groups:
  n: {{count: {count}}}
"""


def _connections(api_ports: set[int]) -> set[tuple[int, int]]:
    """(local port, agent port) of this process's established TCP connections to the agents'
    APIs (a local port may serve several destinations)."""
    mine = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}
    inodes = {link[8:-1] for link in mine if link.startswith("socket:[")}
    ports = set()
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and inode in inodes and int(remote.split(":")[1], 16) in api_ports:
            ports.add((int(local.split(":")[1], 16), int(remote.split(":")[1], 16)))
    return ports


def test_polling_1000_local_agents_is_bounded_and_reuses_connections(tmp_path: Path) -> None:
    name = f"poll-{os.getpid() % 100000}"
    topo = tmp_path / "poll.yaml"
    topo.write_text(TOPOLOGY.format(name=name, count=NODES))
    env = {**os.environ, "MESHBED_HOME": str(tmp_path / "home")}
    cli = [sys.executable, "-m", "orchestrator"]
    up = subprocess.run([*cli, "up", str(topo)], env=env, capture_output=True, text=True,
                        timeout=500)
    try:
        assert up.returncode == 0, up.stderr[-3000:]

        async def go() -> tuple[list[int], list[set[tuple[int, int]]], int, int]:
            mesh = Mesh.attach(name, home=tmp_path / "home")
            assert mesh.state is not None
            apis = {int(n["api"].rpartition(":")[2]) for n in mesh.state.nodes.values()}
            answered, seen = [], []
            try:
                for _ in range(3):
                    statuses = await mesh.statuses(timeout=60.0, keep=True)
                    answered.append(sum(1 for s in statuses.values() if s is not None))
                    seen.append(_connections(apis))
                pool = mesh.status_pool()
                return answered, seen, pool.opened, pool.peak_busy
            finally:
                await mesh.close_connections()

        answered, seen, opened, peak = asyncio.run(go())
        assert answered == [NODES] * 3
        assert len(seen[0]) == NODES  # one connection per agent ...
        assert seen[0] == seen[1] == seen[2]  # ... the same ones in every poll
        assert opened == NODES
        assert 1 < peak <= meshmod.STATUS_CONCURRENCY
    finally:
        down = subprocess.run([*cli, "down", name], env=env, capture_output=True, text=True,
                              timeout=300)
    assert down.returncode == 0, down.stderr[-3000:]
    assert not (tmp_path / "home" / name).exists()


def test_a_connection_the_agent_closed_while_idle_is_replaced() -> None:
    """The agent closes idle keep-alive connections (its timeout): the next GET opens a new
    one instead of failing."""
    from orchestrator.peerclient import ConnectionPool, PeerClient

    accepted = 0

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()  # then goes away, without saying so

    async def go() -> list[dict[str, object]]:
        server = await asyncio.start_server(one_answer, "127.0.0.1", 0)
        api = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        pool = ConnectionPool(4)
        try:
            first = await PeerClient(api, pool=pool).status(timeout=10)
            await asyncio.sleep(0.05)  # the close reaches us
            second = await PeerClient(api, pool=pool).status(timeout=10)
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()
        return [first, second]

    assert asyncio.run(go()) == [{}, {}]
    assert accepted == 2
