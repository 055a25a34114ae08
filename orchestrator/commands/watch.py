"""`meshbed watch [NAME]`: live per-node chunk bars, rates and swarm progress."""

from __future__ import annotations

import argparse
import asyncio
import time

from rich.live import Live

from orchestrator.mesh import Mesh
from orchestrator.ui import out_console, watch_frame

MAX_WATCH_SECONDS = 24 * 3600  # a bounded loop, even for a forgotten terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="mesh name (needed when several are up)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames")


def main(args: argparse.Namespace) -> int:
    mesh = Mesh.attach(args.name)
    assert mesh.state is not None
    nodes, contents = mesh.state.nodes, mesh.contents
    console = out_console()

    def frame() -> object:
        return watch_frame(mesh.name, nodes, contents, asyncio.run(mesh.statuses()))

    if args.once:
        console.print(frame())
        return 0
    end = time.monotonic() + MAX_WATCH_SECONDS
    try:
        with Live(frame(), console=console, refresh_per_second=4) as live:  # type: ignore[arg-type]
            while time.monotonic() < end:
                time.sleep(max(0.2, args.interval))
                if not mesh.state.dir.exists():
                    console.print(f"mesh {mesh.name} is gone")
                    return 0
                live.update(frame())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
    return 0
