"""`meshbed report NAME [--report FILE.json] [--html FILE.html]`: the report of the scenario
played on a mesh that is up (`meshbed play`); waits for a scenario still playing."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator import player
from orchestrator import state as statemod
from orchestrator.commands.run import check_output_path, read_samples, write_outputs
from orchestrator.errors import InputError
from orchestrator.ui import final_lines, out_console, summary

MAX_WAIT_SECONDS = 24 * 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="mesh name (needed when several are up)")
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the report JSON here")
    parser.add_argument("--html", type=Path, metavar="FILE.html", help="write the HTML report here")
    parser.add_argument("--json", action="store_true", help="print the report JSON instead of tables")


def wait_for_end(mesh_dir: Path) -> dict[str, Any]:
    """play.json once its player has ended (at once when it has)."""
    said = False
    end = time.monotonic() + MAX_WAIT_SECONDS
    while time.monotonic() < end:
        play = player.read_play(mesh_dir)
        if play is None and (mesh_dir / player.REPORT_FILE).exists():
            return {"phase": "done"}  # `meshbed run --keep` left its report
        if play is None:
            raise InputError(f"no scenario was played on mesh {mesh_dir.name}: `meshbed play {mesh_dir.name}`")
        if not player.is_playing(play):
            return play
        if not said:
            print(f"meshbed: waiting for the scenario to end (t={play.get('elapsed', 0):.0f}s; "
                  "Ctrl-C stops waiting, the scenario plays on)", file=sys.stderr)
            said = True
        time.sleep(0.5)
    raise InputError("gave up waiting for the scenario to end")


def main(args: argparse.Namespace) -> int:
    mesh_dir = statemod.resolve(args.name, statemod.home())
    check_output_path(args.report, "--report")
    check_output_path(args.html, "--html")
    play = wait_for_end(mesh_dir)
    try:
        report: dict[str, Any] = json.loads((mesh_dir / player.REPORT_FILE).read_text())
    except (OSError, ValueError):
        raise InputError(f"the scenario on {mesh_dir.name} ended ({play.get('phase')}) without a report; "
                         f"see {mesh_dir / player.LOG_FILE}") from None
    write_outputs(report, read_samples(mesh_dir), args.report, args.html)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out_console().print(summary(report))
        for line in final_lines(report):
            print(f"meshbed: {line}", file=sys.stderr)
    return 0
