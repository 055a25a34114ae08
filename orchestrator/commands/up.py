"""`meshbed up TOPO.yaml`: deploy, seed, wait until every node is ready; leave it running."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from orchestrator.commands._runtime import run_interruptible
from orchestrator.mesh import Mesh
from orchestrator.ui import RunView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", type=Path, help="topology YAML file")


def main(args: argparse.Namespace) -> int:
    from orchestrator.loader import load_topology

    topo = load_topology(args.topology)
    view = RunView()
    mesh = Mesh(topo, say=view.say)
    mesh.check_available()

    async def go() -> int:
        try:
            await mesh.up()
        except asyncio.CancelledError:
            await asyncio.shield(mesh.down())
            raise
        n = len(topo.nodes)
        view.say(f"mesh {topo.name} is up: {n} nodes; `meshbed status {topo.name}`, "
                 f"`meshbed watch {topo.name}`, `meshbed down {topo.name}`")
        return 0

    return run_interruptible(go)
