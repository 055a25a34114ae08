"""`meshbed graph TOPO.yaml [--report r.json] [-o FILE] [--format svg|dot|mermaid]`: draw a
topology (groups, access links, who seeds what to whom), or with ``--report`` who sent how
much to whom in that run.

The format follows the output file's suffix: ``.svg`` SVG (drawn in pure Python),
``.dot``/``.gv`` Graphviz DOT, ``.mmd`` Mermaid, ``.md`` Mermaid inside a fenced block.
Without ``-o`` the Mermaid text goes to stdout (paste it into any Markdown that renders
Mermaid, or pipe it); ``--format`` overrides the choice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from orchestrator.errors import InputError
from orchestrator.graph import FORMATS, render
from orchestrator.graph_flow import render_flow
from orchestrator.loader import load_topology

SUFFIXES = {".svg": "svg", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".md": "mermaid"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", metavar="TOPO.yaml", help="the topology file to draw")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write here; the suffix picks the format (.svg .dot .gv .mmd .md); default: "
        "Mermaid on stdout",
    )
    parser.add_argument("-f", "--format", choices=FORMATS, help="override the format")
    parser.add_argument("--report", metavar="FILE.json", type=Path,
                        help="a run's report: draw the bytes sent between nodes, nodes coloured by completion time")


def pick_format(output: Optional[str], fmt: Optional[str]) -> str:
    if fmt:
        return fmt
    if output is None:
        return "mermaid"
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"cannot tell the format of {output!r}: use a suffix .svg, .dot, .gv, .mmd or .md, "
            "or give --format"
        )
    return SUFFIXES[suffix]


def main(args: argparse.Namespace) -> int:
    fmt = pick_format(args.output, args.format)
    topology = load_topology(args.topology)
    if args.report is not None:
        text = render_flow(topology, read_report(args.report, topology.name), fmt)
    else:
        text = render(topology, fmt)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if out.suffix.lower() == ".md" and fmt == "mermaid":
        text = f"# {topology.name}\n\n```mermaid\n{text}```\n"
    _write_atomically(out, text)
    print(f"wrote {out} ({fmt})", file=sys.stderr)
    return 0


def read_report(path: Path, mesh: str) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a report JSON ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("nodes"), dict):
        raise InputError(f"{path}: not a meshbed report (no nodes)")
    if report.get("name") != mesh:
        raise InputError(f"{path}: report of mesh {report.get('name')!r}, not of {mesh!r}")
    return report


def _write_atomically(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # a picture, not a secret: what the user's umask gives
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
