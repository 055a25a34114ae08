"""Run a mesh start to finish in a test: up, play, report, down (always)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

from orchestrator.mesh import Mesh
from orchestrator.model import Topology


def play_report(topo: Topology, home: Optional[Path] = None) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        mesh = Mesh(topo, home=home)
        try:
            await mesh.up()
            await mesh.play()
            return mesh.report()
        finally:
            await mesh.down()

    return asyncio.run(go())
