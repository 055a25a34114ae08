"""`meshbed run TOPO.yaml [--report FILE.json] [--keep]`: up + play + report + down."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from orchestrator import htmlreport, monitor
from orchestrator.commands._runtime import run_interruptible
from orchestrator.errors import InputError
from orchestrator.mesh import Mesh
from orchestrator.report import write_report
from orchestrator.ui import RunView, final_lines, out_console, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", type=Path, help="topology YAML file")
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the report JSON here")
    parser.add_argument("--keep", action="store_true", help="leave the mesh running afterwards")
    parser.add_argument("--json", action="store_true", help="print the report JSON instead of tables")
    parser.add_argument("--html", type=Path, metavar="FILE.html",
                        help="write a self-contained HTML page with charts of the run")


def read_samples(mesh_dir: Path) -> list[dict[str, Any]]:
    """The run's samples (read before `down` removes them)."""
    samples: list[dict[str, Any]] = []
    f = mesh_dir / "samples.jsonl"
    if f.exists():
        for line in f.read_text().splitlines():
            try:
                samples.append(json.loads(line))
            except ValueError:
                continue  # a torn last line after a crash
    return samples


def check_output_path(path: Optional[Path], flag: str) -> None:
    """Refuse an output file that cannot be written before anything is deployed, so a long
    run never ends in a traceback and a lost report."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {path}: not writable")


def write_outputs(report: dict[str, Any], samples: list[dict[str, Any]],
                  json_path: Optional[Path], html_path: Optional[Path]) -> None:
    try:
        if json_path:
            write_report(report, json_path)
        if html_path:
            html_path.write_text(htmlreport.render(report, samples))
            print(f"html report: {html_path}", file=sys.stderr)
    except OSError as exc:  # the report still goes to the screen
        print(f"meshbed: cannot write the report: {exc}", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    from orchestrator.commands.validate import refuse_inventory
    from orchestrator.loader import load_topology

    refuse_inventory(args.topology)
    topo = load_topology(args.topology)
    check_output_path(args.report, "--report")
    check_output_path(args.html, "--html")
    view = RunView()
    mesh = Mesh(topo, say=view.say)
    mesh.check_available()
    report: Optional[dict[str, Any]] = None

    async def go() -> int:
        nonlocal report
        keep = False
        try:
            with view:
                await mesh.up()
                await mesh.play(on_sample=view.on_sample)
                report = mesh.report()
                view.finish(report)
            samples = read_samples(mesh.state.dir) if mesh.state is not None else []
            write_outputs(report, samples, args.report, args.html)
            if monitor.load_state():  # a running monitor charts finished runs too
                monitor.save_result(report)
            keep = bool(args.keep)
            if keep and mesh.state is not None:  # for `meshbed report NAME` later
                write_report(report, mesh.state.dir / "report.json")
        finally:
            if not keep:
                await asyncio.shield(mesh.down())
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            out_console().print(summary(report))
            for line in final_lines(report):
                print(f"meshbed: {line}", file=sys.stderr)
        if args.report:
            print(f"report: {args.report}", file=sys.stderr)
        if keep:
            print(f"mesh {topo.name} kept running: `meshbed down {topo.name}`", file=sys.stderr)
        if topo.monitoring:
            print("monitoring stays up for the next runs: `meshbed monitor down` stops it", file=sys.stderr)
        return 0 if report["ok"] else 1

    return run_interruptible(go)
