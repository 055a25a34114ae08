"""`meshbed graph TOPO.yaml [-o FILE] [--format svg|dot|mermaid]`: draw a topology.

The format follows the output file's suffix: ``.svg`` SVG (drawn in pure Python),
``.dot``/``.gv`` Graphviz DOT, ``.mmd`` Mermaid, ``.md`` Mermaid inside a fenced block.
Without ``-o`` the Mermaid text goes to stdout (paste it into any Markdown that renders
Mermaid, or pipe it); ``--format`` overrides the choice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from orchestrator.errors import InputError
from orchestrator.graph import FORMATS, render
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


def _write_atomically(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
