"""Status polling at 1,000 nodes: at most STATUS_CONCURRENCY requests in flight, each
agent's connection opened once and kept alive across polls.

1,000 real agents do not fit a shared 2-core test host, so the agents here are 1,000
keep-alive HTTP/1.1 listeners on 127.0.0.1 in the test's own event loop (one port each,
as local agents have), answering GET /status like an agent; the engine side is real.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from orchestrator import mesh as meshmod
from orchestrator.mesh import Mesh
from orchestrator.state import MeshState

pytestmark = pytest.mark.timeout(120)
NODES = 1000


class Agents:
    def __init__(self) -> None:
        self.accepted = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests = 0
        self.servers: list[asyncio.AbstractServer] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")  # GET: no body
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                await asyncio.sleep(0.002)  # some work, so requests overlap
                body = json.dumps({"node": request.split(b" ")[1].decode(), "torrents": {}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                self.requests += 1
                self.in_flight -= 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, n: int) -> list[str]:
        apis = []
        for _ in range(n):
            server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.servers.append(server)
            apis.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        return apis

    async def stop(self) -> None:
        for s in self.servers:
            s.close()
        for s in self.servers:
            await s.wait_closed()


def test_polling_1000_nodes_is_bounded_and_reuses_connections(tmp_path: Path) -> None:
    async def go() -> tuple[Agents, list[int]]:
        agents = Agents()
        apis = await agents.start(NODES)
        nodes = {f"n-{i}": {"backend": "local", "api": api, "wire": api, "group": "n"}
                 for i, api in enumerate(apis)}
        mesh = Mesh(None, home=tmp_path)
        mesh.state = MeshState(tmp_path / "polled", {"mesh": "polled", "token": "t", "nodes": nodes})
        answered = []
        try:
            for _ in range(3):
                statuses = await mesh.statuses(timeout=30.0, keep=True)
                answered.append(sum(1 for s in statuses.values() if s is not None))
        finally:
            await mesh.close_connections()
            await agents.stop()
        return agents, answered

    agents, answered = asyncio.run(go())
    assert answered == [NODES] * 3
    assert agents.requests == 3 * NODES
    assert agents.accepted == NODES  # one connection per agent, kept alive across polls
    assert 1 < agents.peak_in_flight <= meshmod.STATUS_CONCURRENCY


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
