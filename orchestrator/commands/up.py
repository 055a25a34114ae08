"""`meshbed up TOPO.yaml`: deploy, seed, wait until every node is ready; leave it running."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from orchestrator.commands._runtime import run_interruptible
from orchestrator.errors import InputError
from orchestrator.mesh import Mesh
from orchestrator.ui import RunView, plural

EPILOG = """\
`up` deploys and seeds; it does not play the topology's scenario. To play it on the running
mesh, detached, while `meshbed watch NAME`, `meshbed status NAME` and Grafana show it live:
  meshbed up TOPO.yaml --play          (or: meshbed up TOPO.yaml; meshbed play NAME)
  meshbed watch NAME                   live view; Ctrl-C leaves the mesh and the scenario running
  meshbed report NAME --html r.html    waits for the scenario to end, prints and writes the report
  meshbed down NAME                    stops the scenario and removes the mesh
`meshbed run TOPO.yaml` does all of this in one go (up, play, report, down)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", type=Path, help="topology YAML file")
    parser.add_argument("--play", action="store_true",
                        help="then play the topology's scenario, detached (as `meshbed play NAME`)")
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def main(args: argparse.Namespace) -> int:
    from orchestrator.commands.validate import refuse_inventory
    from orchestrator.loader import load_topology

    refuse_inventory(args.topology)
    topo = load_topology(args.topology)
    if args.play and not topo.scenario:
        raise InputError("--play: the topology has no scenario", topo.source)
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
        view.say(f"mesh {topo.name} is up: {plural(n, 'node')}; `meshbed status {topo.name}`, "
                 f"`meshbed watch {topo.name}`, `meshbed down {topo.name}`")
        if args.play:
            from orchestrator.commands.play import start

            start(topo.name, args.topology, mesh.home)
        elif topo.scenario:
            view.say(f"the scenario was not played: `meshbed play {topo.name}` plays it")
        return 0

    return run_interruptible(go)
