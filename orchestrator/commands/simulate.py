"""`meshbed simulate TOPO.yaml [--report r.json] [--html r.html]`: the topology in virtual
time, the agent's own swarm core on a model of the network (docs/simulate.md). Nothing is
deployed; exit 0 when the expectations are met, 1 when not, 2 on bad input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.commands.run import check_output_path
from orchestrator.report import write_report
from orchestrator.ui import RunView, out_console, summary

SUMMARY_NODES = 40  # more node rows than this: the summary shows the first ones only


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", type=Path, help="topology YAML file")
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the report JSON here")
    parser.add_argument("--json", action="store_true", help="print the report JSON instead of tables")
    parser.add_argument("--html", type=Path, metavar="FILE.html",
                        help="write a self-contained HTML page with charts of the run")


def short(report: dict[str, Any]) -> dict[str, Any]:
    """The report with at most SUMMARY_NODES node rows, for the terminal table."""
    nodes = report["nodes"]
    if len(nodes) <= SUMMARY_NODES:
        return report
    fetching = [n for n, e in nodes.items() if e["fetches"]]
    keep = fetching[: SUMMARY_NODES // 2] + fetching[-SUMMARY_NODES // 2:]
    return dict(report, nodes={n: nodes[n] for n in keep})


def main(args: argparse.Namespace) -> int:
    from orchestrator.simulate import html, setup
    from orchestrator.simulate.report import build_report
    from orchestrator.simulate.world import World

    topo = setup.load(args.topology)
    check_output_path(args.report, "--report")
    check_output_path(args.html, "--html")
    note = setup.backend_only_note(topo)
    if note:
        print(note, file=sys.stderr)
    setup.check_memory(topo)
    view = RunView()
    world = World(topo, say=view.say)
    with view:
        view.say(f"simulating {len(topo.nodes)} nodes in virtual time (seed {topo.seed})")
        cfg = world.core_config
        if setup.capped(topo):
            view.say(f"more than {setup.LARGE_SWARM} nodes: each agent dials at most {cfg.max_peers} "
                     f"peers (accepting some more) and keeps {cfg.max_known} addresses per torrent")
        wall = world.play(on_sample=view.on_sample)
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
