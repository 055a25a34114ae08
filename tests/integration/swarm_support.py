"""Helpers for in-process swarm tests: real agents on 127.0.0.1, real TCP, one event loop."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from prometheus_client import CollectorRegistry

from peer import metainfo, synthetic, wire
from peer.agent import Agent
from peer.metainfo import Metainfo
from peer.shaping import LinkEmulator

MBIT = 1_000_000


@dataclass
class Content:
    meta: Metainfo
    path: Path
    sha256: str


def make_content(tmp: Path, size: int, piece_length: int, name: str = "movie",
                 seed: int = 7) -> Content:
    path = tmp / "inbox" / name
    sha = synthetic.write_file(path, seed, name, size)
    return Content(metainfo.create(path, piece_length=piece_length), path, sha)


TEST_MESH_KEY = b"test mesh key"  # the in-process agents prove their names to each other


def make_agent(tmp: Path, node: str, up_mbit: Optional[float] = None,
               down_mbit: Optional[float] = None, seed: int = 0, **kw: object) -> Agent:
    link = LinkEmulator(
        up_bps=int(up_mbit * MBIT) if up_mbit else None,
        down_bps=int(down_mbit * MBIT) if down_mbit else None,
    )
    return Agent(
        data_dir=tmp / node, registry=CollectorRegistry(), link=link, listen_host="127.0.0.1",
        node=node, group=node.rsplit("-", 1)[0], mesh="test",
        rng=random.Random(f"{seed}:{node}"),
        **{"mesh_key": TEST_MESH_KEY, **kw},  # type: ignore[arg-type]
    )


def addr(a: Agent) -> tuple[str, int]:
    return ("127.0.0.1", a.wire_port)


async def wait_complete(agents: list[Agent], meta: Metainfo, timeout: float,
                        verified: bool = True) -> float:
    """Wait until every agent holds a complete (and, if asked, SHA-256 checked) copy."""
    t0 = time.monotonic()
    while True:
        done = True
        for a in agents:
            t = a.torrents.get(meta.info_hash)
            if t is None or not t.complete or (verified and t.verified is None):
                done = False
                break
        if done:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            states = {a.node: a.status()["torrents"].get(meta.hexhash, {}).get("have")
                      for a in agents}
            raise AssertionError(f"swarm not complete after {timeout} s: {states}")
        await asyncio.sleep(0.1)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return value or 0.0


async def fake_seed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info_hash: bytes,
                    on_request: Callable[[int, int, int], None],
                    peer_id: bytes = b"-XX0000-abcdefghijkl") -> None:
    """A seed on raw streams (an ``asyncio.start_server`` callback's body): answers the
    handshake with the fast extension, says HAVE_ALL and UNCHOKE, then calls
    ``on_request(index, begin, length)`` for every REQUEST until the connection ends."""
    await reader.readexactly(68)
    writer.write(wire.encode_handshake(info_hash, peer_id, bytes([0] * 7 + [wire.FAST_BIT])))
    writer.write(wire.encode(wire.HaveAll()) + wire.encode(wire.Unchoke()))
    try:
        while True:
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            body = await reader.readexactly(n)
            if n and body[0] == wire.REQUEST:
                on_request(*struct.unpack(">III", body[1:]))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
