"""Status polling of a large mesh: kept-alive connections with bounded concurrency (what
`Mesh.statuses(keep=True)` does while a scenario plays) against one connection per call,
measured in the same run.

The agents are N keep-alive HTTP/1.1 listeners on 127.0.0.1 in this process answering
GET /status after 2 ms (N real agents do not fit a small host); the client side is
meshbed's own. Prints connections opened, peak requests in flight and seconds per poll.

    python3 bench/status_polling.py [--nodes 1000] [--polls 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.mesh import STATUS_CONCURRENCY, Mesh  # noqa: E402
from orchestrator.state import MeshState  # noqa: E402


class Agents:
    def __init__(self) -> None:
        self.accepted = self.in_flight = self.peak = 0
        self.servers: list[asyncio.AbstractServer] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                await asyncio.sleep(0.002)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"torrents\":{}}")
                self.in_flight -= 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def measure(nodes: int, polls: int, keep: bool) -> tuple[int, int, float]:
    agents = Agents()
    apis = []
    for _ in range(nodes):
        server = await asyncio.start_server(agents.handle, "127.0.0.1", 0)
        agents.servers.append(server)
        apis.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    home = Path(tempfile.mkdtemp())
    mesh = Mesh(None, home=home)
    mesh.state = MeshState(home / "bench", {"mesh": "bench", "token": "t", "nodes": {
        f"n-{i}": {"backend": "local", "api": a, "wire": a, "group": "n"} for i, a in enumerate(apis)}})
    t0 = time.monotonic()
    for _ in range(polls):
        await mesh.statuses(timeout=30.0, keep=keep)
    per_poll = (time.monotonic() - t0) / polls
    await mesh.close_connections()
    for s in agents.servers:
        s.close()
    return agents.accepted, agents.peak, per_poll


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--polls", type=int, default=5)
    args = ap.parse_args()
    base = asyncio.run(measure(args.nodes, args.polls, keep=False))
    kept = asyncio.run(measure(args.nodes, args.polls, keep=True))
    for label, (opened, peak, per_poll) in (("one connection per call", base),
                                            ("kept-alive (play)", kept)):
        print(f"{label:24s} connections {opened:6d}  peak in flight {peak:4d} "
              f"(bound {STATUS_CONCURRENCY})  {per_poll:.3f} s/poll")
    print(f"ratio: {base[0] / kept[0]:.1f}x fewer connections, "
          f"{base[2] / kept[2]:.2f}x faster per poll")


if __name__ == "__main__":
    main()
