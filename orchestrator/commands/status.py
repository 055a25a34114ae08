"""`meshbed status [NAME]`: node, backend, address, state, chunks per content, rates, and
what the scenario player is at."""

from __future__ import annotations

import argparse
import asyncio
import json

from orchestrator import player
from orchestrator import state as statemod
from orchestrator.mesh import Mesh
from orchestrator.ui import out_console, play_line, status_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="mesh name (default: every running mesh)")
    parser.add_argument("--json", action="store_true", help="print the raw /status of every node")


def main(args: argparse.Namespace) -> int:
    home = statemod.home()
    names = [args.name] if args.name else [p.name for p in statemod.mesh_dirs(home)]
    console = out_console()
    if not names:
        console.print(f"no running mesh in {home}")
        return 0
    dumps = {}
    for name in names:
        mesh = Mesh.attach(name)
        assert mesh.state is not None
        statuses = asyncio.run(mesh.statuses())
        if args.json:
            dumps[name] = statuses
            continue
        console.print(status_table(name, mesh.state.nodes, mesh.contents, statuses))
        line = play_line(name, player.read_play(mesh.state.dir))
        if line:
            console.print(line, markup=False)
    if args.json:
        print(json.dumps(dumps, indent=1))
    return 0
