"""`meshbed simulate TOPO.yaml [--report r.json] [--html r.html]`: the topology in virtual
time, the agent's own swarm core on a model of the network (docs/simulate.md). Nothing is
deployed; exit 0 when the expectations are met, 1 when not, 2 on bad input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from orchestrator.commands.run import check_output_path
from orchestrator.errors import InputError
from orchestrator.report import write_report
from orchestrator.ui import RunView, out_console, summary
from orchestrator.units import parse_duration

if TYPE_CHECKING:
    from orchestrator.simulate.checkpoint import Checkpoint

SUMMARY_NODES = 40  # more node rows than this: the summary shows the first ones only


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", type=Path, help="topology YAML file")
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the report JSON here")
    parser.add_argument("--json", action="store_true", help="print the report JSON instead of tables")
    parser.add_argument("--html", type=Path, metavar="FILE.html",
                        help="write a self-contained HTML page with charts of the run")
    parser.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="save the run to FILE as it goes and when stopped (Ctrl-C); if FILE exists, go on "
                             "from it. Removed when the run is over")
    parser.add_argument("--checkpoint-every", metavar="DURATION",
                        help="wall time between two saves (default 10m)")


def short(report: dict[str, Any]) -> dict[str, Any]:
    """The report with at most SUMMARY_NODES node rows, for the terminal table."""
    nodes = report["nodes"]
    if len(nodes) <= SUMMARY_NODES:
        return report
    fetching = [n for n, e in nodes.items() if e["fetches"]]
    keep = fetching[: SUMMARY_NODES // 2] + fetching[-SUMMARY_NODES // 2:]
    return dict(report, nodes={n: nodes[n] for n in keep})


def checkpoint_for(args: argparse.Namespace) -> tuple[Optional[Checkpoint], Optional[dict[str, Any]]]:
    """The --checkpoint the user asked for (or None) and the header of the run saved there
    (or None: nothing saved yet); InputError for a bad path or duration, or a checkpoint of
    another topology."""
    if args.checkpoint is None:
        return None, None
    from orchestrator.simulate.checkpoint import DEFAULT_EVERY, Checkpoint, peek, topology_digest

    check_output_path(args.checkpoint, "--checkpoint")
    every = DEFAULT_EVERY
    if args.checkpoint_every is not None:
        try:
            every = parse_duration(args.checkpoint_every)
        except (ValueError, TypeError) as exc:
            raise InputError(f"--checkpoint-every {args.checkpoint_every}: {exc}") from None
        if every <= 0:
            raise InputError(f"--checkpoint-every {args.checkpoint_every}: must be more than 0")
    saver = Checkpoint(args.checkpoint, topology_digest(args.topology), every)
    if not args.checkpoint.exists():
        return saver, None
    header = peek(args.checkpoint)
    if header.get("digest") != saver.digest:
        raise InputError("checkpoint of another topology or meshbed version; delete it to start over",
                         args.checkpoint)
    return saver, header


def main(args: argparse.Namespace) -> int:
    from orchestrator.simulate import html, setup
    from orchestrator.simulate.report import build_report
    from orchestrator.simulate.world import Paused, World

    topo = setup.load(args.topology)
    check_output_path(args.report, "--report")
    check_output_path(args.html, "--html")
    saver, saved = checkpoint_for(args)
    note = setup.backend_only_note(topo)
    if note:
        print(note, file=sys.stderr)
    setup.check_memory(topo)
    view = RunView()
    if saver is not None and saved is not None:
        from orchestrator.simulate import checkpoint

        print(f"meshbed: going on from {saver.path} (virtual {saved['virtual']:.1f} s); loading it",
              file=sys.stderr)
        world = checkpoint.load(saver.path, saver.digest)
        world.say = view.say
    else:
        world = World(topo, say=view.say)
    with view:
        if not world.next_sample:
            view.say(f"simulating {len(topo.nodes)} nodes in virtual time (seed {topo.seed})")
            cfg = world.core_config
            if setup.capped(topo):
                view.say(f"more than {setup.LARGE_SWARM} nodes: each agent dials at most {cfg.max_peers} "
                         f"peers (accepting some more) and keeps {cfg.max_known} addresses per torrent")
        if saver is not None:
            saver.catch_signals(world)
        try:
            wall = world.play(on_sample=view.on_sample, checkpoint=saver)
        except Paused as exc:
            view.say(f"{exc}: run the same command to go on")
            return 130
        finally:
            if saver is not None:
                saver.release_signals()
    if saver is not None and saver.path.exists():
        saver.path.unlink()
        print(f"meshbed: the run is over: {saver.path} removed", file=sys.stderr)
    report = build_report(world, wall)
    try:
        if args.report:
            write_report(report, args.report)
        if args.html:
            args.html.write_text(html.render(report, world.samples, html.typical_links(world)))
            print(f"html report: {args.html}", file=sys.stderr)
    except OSError as exc:  # the report still goes to the screen below
        print(f"meshbed: cannot write the report: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        shown = short(report)
        out_console().print(summary(shown))
        if shown is not report:
            print(f"({len(report['nodes'])} nodes: table shows {len(shown['nodes'])}; all are in --report)")
    print(f"simulated {report['virtual_seconds']:.1f}s in {report['wall_seconds']:.1f}s wall, "
          f"{report['events_processed']} events", file=sys.stderr)
    if args.report:
        print(f"report: {args.report}", file=sys.stderr)
    return 0 if report["ok"] else 1
