"""`meshbed` command line. Each command lives in ``orchestrator/commands/<module>.py`` with
``add_arguments(parser)`` and ``main(args) -> int``; this file only wires them up and turns
errors into exit codes (InputError: one line on stderr, exit 2)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

from orchestrator import __version__
from orchestrator.errors import MeshbedError

# command name -> (module under orchestrator.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "parse and check a topology; print a summary"),
    "up": ("up", "deploy a mesh, seed content, wait until every node is ready"),
    "run": ("run", "up + play the scenario + report + down"),
    "simulate": ("simulate", "play a topology in virtual time with the agent's own swarm logic"),
    "status": ("status", "table of the nodes of running meshes"),
    "watch": ("watch", "live view of a running mesh"),
    "down": ("down", "remove everything a mesh created (idempotent)"),
    "graph": ("graph", "draw a topology (SVG, DOT or Mermaid by suffix)"),
    "devices": ("devices", "physical devices: `devices check INVENTORY`"),
    "monitor": ("monitor", "Prometheus (and Grafana) for running meshes: `monitor up|down|status`"),
    "image": ("image", "build the peer container image (`image build [--offline]`)"),
    "doctor": ("doctor", "what this host supports and what each backend will use"),
    "swarm": ("swarm", "single-node Docker Swarm helpers: `swarm init|leave|status`"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshbed", description="Deploy and measure peer-to-peer file distribution meshes."
    )
    parser.add_argument("--version", action="version", version=f"meshbed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(f"orchestrator.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"orchestrator.commands.{module}":
                raise
            p.set_defaults(_module=None)
            continue
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    mod = getattr(args, "_module", None)
    if mod is None:
        print(f"meshbed: command {args.command!r} is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(mod.main(args) or 0)
    except MeshbedError as exc:
        print(f"meshbed: {exc}" if exc.exit_code != 2 else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("meshbed: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
