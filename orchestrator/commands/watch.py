"""`meshbed watch [NAME]`: live per-node chunk bars, rates, swarm progress and the scenario
being played. On a terminal the view redraws in place; to a pipe or a file it prints one
plain frame every interval (so `meshbed watch > log` records the run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any, Optional

from rich.live import Live

from orchestrator import player
from orchestrator.errors import InputError
from orchestrator.mesh import Mesh
from orchestrator.ui import out_console, watch_frame

MAX_WATCH_SECONDS = 24 * 3600  # a bounded loop, even for a forgotten terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="mesh name (needed when several are up)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames (default 1)")


def seeders_of(mesh: Mesh) -> Optional[dict[str, set[str]]]:
    """Seeders per content from the topology the mesh was brought up from (None if gone)."""
    from orchestrator.loader import load_topology

    assert mesh.state is not None
    path = mesh.state.data.get("topology")
    if not path:
        return None
    try:
        topo = load_topology(path)
        return {c.name: set(c.seeders) for c in topo.contents}
    except InputError:
        return None


def phase_of(mesh_dir: Path) -> Optional[str]:
    try:
        phase = json.loads((mesh_dir / "state.json").read_text()).get("phase")
    except (OSError, ValueError):
        return None
    return str(phase) if phase else None


def main(args: argparse.Namespace) -> int:
    mesh = Mesh.attach(args.name)
    assert mesh.state is not None
    nodes, contents = mesh.state.nodes, mesh.contents
    created = mesh.state.data.get("created")
    seeders = seeders_of(mesh)
    console = out_console()

    def frame() -> Any:
        up = time.time() - float(created) if created else None
        mesh_dir = mesh.state.dir  # type: ignore[union-attr]
        play = player.read_play(mesh_dir)
        if play is None and phase_of(mesh_dir) == "running":  # `meshbed run --keep` in another shell
            play = {"by_run": True}
        return watch_frame(mesh.name, nodes, contents, asyncio.run(mesh.statuses()), seeders, play, up)

    if args.once:
        console.print(frame())
        return 0
    interval = max(0.2, args.interval)
    end = time.monotonic() + MAX_WATCH_SECONDS
    try:
        if not console.is_terminal:
            while time.monotonic() < end:
                if not mesh.state.dir.exists():
                    console.print(f"mesh {mesh.name} is gone")
                    return 0
                console.print(f"--- {time.strftime('%H:%M:%S')}")
                console.print(frame())
                console.file.flush()
                time.sleep(interval)
            return 0
        with Live(frame(), console=console, refresh_per_second=4) as live:
            while time.monotonic() < end:
                time.sleep(interval)
                if not mesh.state.dir.exists():
                    console.print(f"mesh {mesh.name} is gone")
                    return 0
                live.update(frame())
    except KeyboardInterrupt:
        pass
    return 0
