"""Mesh.notice_lost: a node missing polls is lost only after LOST_AFTER_MISSES misses in a row
and only when its backend says why; a backend without ``why_lost`` never loses a node."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

from orchestrator.backends.base import Endpoint
from orchestrator.mesh import LOST_AFTER_MISSES, Mesh
from orchestrator.model import Content, Link, Node, Topology
from orchestrator.state import MeshState


class Explaining:
    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = reasons
        self.asked: list[str] = []

    async def why_lost(self, node: Node) -> Optional[str]:
        self.asked.append(node.name)
        return self.reasons.get(node.name)


def mesh_with(tmp: Path, backend: Any) -> Mesh:
    nodes = tuple(Node(f"n-{i}", "n", i, "swarm", Link()) for i in range(3))
    topo = Topology(name="t", source=None, strategy="swarm", seed=1, nodes=nodes,
                    contents=(Content("c", ("n-0",), 1 << 18, size=1 << 20),), scenario=())
    mesh = Mesh(topo, home=tmp)
    mesh.state = MeshState(tmp, {"mesh": "t", "token": "x", "nodes": {}})
    for n in nodes:
        mesh.endpoints[n.name] = Endpoint(api="127.0.0.1:1", wire="127.0.0.1:2")
    mesh.backends["swarm"] = backend
    return mesh


def test_lost_after_consecutive_misses_with_the_backends_reason(tmp_path: Path) -> None:
    backend = Explaining({"n-1": "swarm node w2 is down"})
    mesh = mesh_with(tmp_path, backend)
    missing: dict[str, Any] = {"n-0": {"ok": 1}, "n-1": None, "n-2": None}

    async def go() -> list[list[str]]:
        return [await mesh.notice_lost(missing) for _ in range(LOST_AFTER_MISSES + 1)]

    rounds = asyncio.run(go())
    assert rounds[:-2] == [[]] * (LOST_AFTER_MISSES - 1)
    assert rounds[-2] == ["n-1"] and rounds[-1] == []
    assert mesh.lost == {"n-1": "swarm node w2 is down"} and "n-1" in mesh.dead
    assert "n-2" not in mesh.dead  # missing, but its backend sees nothing wrong: only slow
    assert "n-0" not in backend.asked


def test_an_answer_resets_the_count_and_no_hook_means_never_lost(tmp_path: Path) -> None:
    backend = Explaining({"n-1": "gone"})
    mesh = mesh_with(tmp_path, backend)

    async def go() -> None:
        for _ in range(LOST_AFTER_MISSES - 1):
            await mesh.notice_lost({"n-1": None})
        await mesh.notice_lost({"n-1": {"ok": 1}})
        for _ in range(LOST_AFTER_MISSES - 1):
            assert await mesh.notice_lost({"n-1": None}) == []

    asyncio.run(go())
    assert mesh.lost == {}
    plain = mesh_with(tmp_path / "p", object())

    async def many() -> None:
        for _ in range(LOST_AFTER_MISSES * 2):
            assert await plain.notice_lost({"n-1": None}) == []

    asyncio.run(many())
    assert plain.lost == {}
