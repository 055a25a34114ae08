"""peer/tracker.py's Announcer against Debian's opentracker on 127.0.0.1, over HTTP and UDP:
two announcers find each other, "completed" makes a seeder, "stopped" removes a peer."""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
from pathlib import Path

import pytest

from peer.tracker import Addr, Announcer, TransferStats
from tests.facilities import missing
from tests.tracker import Tracker

if shutil.which("opentracker") is None:
    missing("opentracker is not installed", module=True)

pytestmark = pytest.mark.timeout(60)
IH = hashlib.sha1(b"tracker interop").digest()


class Peer:
    def __init__(self, url: str, port: int, left: int) -> None:
        self.port = port
        self.stats = TransferStats(left=left)
        self.seen: set[Addr] = set()
        self.ann = Announcer(
            [[url]], IH, b"-MB0001-" + f"{port:012d}".encode(), port,
            stats=lambda: self.stats, on_peers=self._peers, rng=random.Random(port),
            timeout=3, retry_base=0.2)  # opentracker loads its whitelist in the background
        self.task = asyncio.ensure_future(self.ann.run())

    def _peers(self, peers: list[Addr]) -> None:
        self.seen = set(peers)

    async def wait_for(self, cond: object, timeout: float = 20) -> None:
        async def loop() -> None:
            while not cond(self):  # type: ignore[operator]
                await asyncio.sleep(0.02)  # polls a condition; the bound is the timeout
        await asyncio.wait_for(loop(), timeout)

    async def close(self) -> None:
        await self.ann.stop(3)
        self.task.cancel()


@pytest.mark.parametrize("scheme", ["http", "udp"])
def test_two_announcers_see_each_other(tmp_path: Path, scheme: str) -> None:
    ot = Tracker(tmp_path / "ot", [IH.hex()])
    url = ot.url if scheme == "http" else f"udp://127.0.0.1:{ot.port}/announce"

    async def main() -> None:
        a = Peer(url, 40001, left=1000)
        await a.wait_for(lambda p: p.ann.announces >= 1)
        b = Peer(url, 40002, left=1000)
        try:
            await b.wait_for(lambda p: ("127.0.0.1", 40001) in p.seen)
            assert b.ann.last is not None and b.ann.last.leechers == 2
            a.stats.left = 0
            a.ann.completed()  # also a fresh announce: a now learns about b
            await a.wait_for(lambda p: ("127.0.0.1", 40002) in p.seen)
            assert a.ann.last is not None and a.ann.last.seeders == 1, a.ann.last
            await b.close()
            a.ann.announce_now()
            before = a.ann.announces
            await a.wait_for(lambda p: p.ann.announces > before)
            assert a.ann.last is not None
            assert ("127.0.0.1", 40002) not in a.ann.last.peers, "stopped must remove b"
            assert a.ann.schedule.due() > 60, "the tracker's interval is honoured"
        finally:
            await a.close()
            await b.close()

    try:
        asyncio.run(main())
    finally:
        ot.close()
