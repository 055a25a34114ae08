"""`meshbed` command line. Each command lives in ``orchestrator/commands/<module>.py`` with
``add_arguments(parser)`` and ``main(args) -> int``; this file only wires them up and turns
errors into exit codes (InputError: one line on stderr, exit 2)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional

from orchestrator import __version__, ui
from orchestrator.errors import MeshbedError

# command name -> (module under orchestrator.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "parse and check a topology; print a summary"),
    "up": ("up", "deploy a mesh, seed content, wait until every node is ready"),
    "run": ("run", "up + play the scenario + report + down"),
    "play": ("play", "play a scenario on a mesh that is up, detached (watch/status/Grafana show it)"),
    "report": ("report", "the report of the scenario played on a mesh that is up"),
    "simulate": ("simulate", "play a topology in virtual time with the agent's own swarm logic"),
    "status": ("status", "table of the nodes of running meshes"),
    "watch": ("watch", "live view of a running mesh"),
    "down": ("down", "remove everything a mesh created (idempotent)"),
    "graph": ("graph", "draw a topology (SVG, DOT or Mermaid by suffix)"),
    "devices": ("devices", "physical devices: `devices check INVENTORY`"),
    "monitor": ("monitor", "Prometheus (and Grafana) for running meshes: `monitor up|down|status`"),
    "image": ("image", "build the peer container image (`image build [--offline]`)"),
    "doctor": ("doctor", "what this host supports and what each backend will use"),
    "swarm": ("swarm", "Docker Swarm helpers: `swarm init|leave|status`, a multi-engine `swarm lab up|down|status`"),
}


EPILOG = """\
examples:
  meshbed run examples/quickstart.yaml --report r.json --html r.html
  meshbed up examples/churn.yaml --play; meshbed watch churn; meshbed report churn; meshbed down churn
  meshbed COMMAND --help               options of one command

exit codes:
  0  done (run: every expectation met)
  1  run: expectations not met; up: deploy failed (rolled back); devices check: some unusable
  2  bad input: one line FILE:LINE: what is wrong, on stderr; nothing deployed
  130  interrupted (Ctrl-C); what was deployed is torn down

environment:
  MESHBED_HOME   state of running meshes, one folder per mesh (default ~/.local/state/meshbed)
  NO_COLOR       no colours (as --plain)

topology file reference: docs/topology.md"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshbed", description="Deploy and measure peer-to-peer file distribution meshes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meshbed {__version__}")
    parser.add_argument("--plain", "--no-color", dest="plain", action="store_true",
                        help="plain output: no colours, full-width tables, no live redraw (automatic off a terminal)")
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
    if args.plain or os.environ.get("NO_COLOR"):
        ui.set_plain()
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
    except BrokenPipeError:  # `meshbed ... | head`: the reader is gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
