"""`meshbed play NAME [TOPO.yaml]`: play a scenario on a mesh that is up, detached, so
`watch`, `status` and Grafana show it live; `meshbed report NAME` prints the outcome."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from orchestrator import player
from orchestrator import state as statemod
from orchestrator.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="mesh name (as in `meshbed status`)")
    parser.add_argument("topology", nargs="?", type=Path,
                        help="topology whose scenario to play (default: the file the mesh was brought up from)")


def start(name: str, topo_path: Optional[Path], home: Path) -> None:
    """Check and start the detached player (shared with `meshbed up --play`)."""
    from orchestrator.loader import load_topology

    mesh_dir = statemod.resolve(name, home)
    st = statemod.MeshState.load(mesh_dir)
    if topo_path is None:
        recorded = st.data.get("topology")
        if not recorded:
            raise InputError(f"mesh {name} does not record its topology file: name it, "
                             f"`meshbed play {name} TOPO.yaml`")
        topo_path = Path(recorded)
        if not topo_path.is_absolute() and not topo_path.exists():
            raise InputError(f"mesh {name} was brought up from {recorded}, relative to another folder: "
                             f"name the file, `meshbed play {name} TOPO.yaml`")
    topo = load_topology(topo_path)
    running = player.read_play(mesh_dir)
    if player.is_playing(running):
        assert running is not None
        raise InputError(f"a scenario is already playing on {name} (pid {running['pid']}); "
                         f"wait for it (`meshbed report {name}`) or `meshbed down {name}`", topo.source)
    phase = st.data.get("phase", "not up")
    if phase == "running":
        raise InputError(f"mesh {name} is playing a scenario (`meshbed run` in another shell?)", topo.source)
    if phase not in ("up", "done"):
        raise InputError(f"mesh {name} is {phase}, not up", topo.source)
    player.check_fits(topo, name, st.data)
    play = player.start_detached(name, topo_path, home)
    n = len(topo.scenario)
    print(f"meshbed: playing {n} scenario event{'s' if n != 1 else ''} on {name} (pid {play['pid']}); "
          f"`meshbed watch {name}` shows it live, `meshbed report {name}` waits for the end "
          f"and prints the report", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    start(args.name, args.topology, statemod.home())
    return 0
