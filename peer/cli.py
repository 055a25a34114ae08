"""`meshbed-peer` / `python -m peer` / `python3 peer.pyz`: run one agent by hand.

`run` binds the wire listener and the control API, seeds what it was given, then writes the
ready file atomically ({"pid","api","wire"}); SIGTERM/SIGINT (or POST /stop) close the agent
and exit 0. Bad flags: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

from peer import __version__
from peer.core.identity import derive_mesh_key

log = logging.getLogger("peer.cli")
HOSTILE_MODES = ("corrupt", "lie", "malformed", "stall")


class UsageError(Exception):
    """Bad flag value: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _hostport(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _peer(text: str) -> tuple[str, int]:
    host, port = _hostport(text)
    if port == 0:
        raise argparse.ArgumentTypeError(f"peer port must not be 0: {text!r}")
    return host, port


def _rate(text: str) -> int:
    from peer.shaping import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _number(text: str, suffix: str, upper: float) -> float:
    m = re.match(rf"^\s*(\d+(?:\.\d+)?)\s*(?:{suffix})?\s*$", text, re.IGNORECASE)
    if not m or float(m.group(1)) > upper:
        raise argparse.ArgumentTypeError(f"bad value {text!r}")
    return float(m.group(1))


def _ms(text: str) -> float:
    return _number(text, "ms", 600_000.0)


def _pct(text: str) -> float:
    return _number(text, "%", 100.0)


def _size(text: str) -> int:
    m = re.match(r"^\s*(\d+)\s*(b|kib|mib|gib)?\s*$", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (bytes, or KiB/MiB)")
    scale = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}[(m.group(2) or "b").lower()]
    return int(m.group(1)) * scale


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meshbed-peer", description="meshbed peer agent (BitTorrent wire).")
    parser.add_argument("--version", action="version", version=f"meshbed-peer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run an agent", description="Run one peer agent.")
    run.add_argument("--data-dir", required=True, type=Path, help="torrents, resume data, inbox")
    run.add_argument("--api", type=_hostport, default=("127.0.0.1", 0), metavar="HOST:PORT",
                     help="control API + /metrics (default 127.0.0.1:0)")
    run.add_argument("--listen", type=_hostport, default=("0.0.0.0", 0), metavar="HOST:PORT",
                     help="BitTorrent wire listener (default 0.0.0.0:0)")
    run.add_argument("--node", default="", help="node name (shown to meshbed peers)")
    run.add_argument("--group", default="")
    run.add_argument("--mesh", default="")
    run.add_argument("--backend", default="", help="backend name (informational)")
    run.add_argument("--token-file", type=Path,
                     help="bearer token for mutating API calls (or env MESHBED_TOKEN)")
    run.add_argument("--mesh-key-file", type=Path,
                     help="secret that proves node names to the mesh's agents (or env "
                          "MESHBED_MESH_KEY; default: derived from the token)")
    run.add_argument("--access", choices=["open", "mesh"], default="open",
                     help="who may use the wire: anyone, or proven members and given peers")
    run.add_argument("--ready-file", type=Path, help='JSON {"pid","api","wire"} once listening')
    run.add_argument("--peer", type=_peer, action="append", default=[], metavar="HOST:PORT",
                     help="bootstrap peer (repeatable)")
    run.add_argument("--up", type=_rate, help="upload cap, e.g. 10mbit")
    run.add_argument("--down", type=_rate, help="download cap, e.g. 50mbit")
    run.add_argument("--latency", type=_ms, default=0.0, metavar="MS", help="added one-way delay")
    run.add_argument("--jitter", type=_ms, default=0.0, metavar="MS")
    run.add_argument("--loss", type=_pct, default=0.0, metavar="PCT", help="loss in percent")
    run.add_argument("--seed", type=Path, action="append", default=[], metavar="FILE.torrent",
                     help="seed this torrent (pair with --file, repeatable)")
    run.add_argument("--file", type=Path, action="append", default=[], metavar="PATH",
                     help="payload of the preceding --seed")
    run.add_argument("--log-file", type=Path)
    run.add_argument("--log-level", default="info",
                     choices=["debug", "info", "warning", "error"])
    run.add_argument("--hostile", choices=HOSTILE_MODES, help=argparse.SUPPRESS)
    run.add_argument("--i-know-this-is-a-test", action="store_true", help=argparse.SUPPRESS)

    mk = sub.add_parser("make-torrent", help="make a .torrent and print its infohash",
                        description="Make a single-file torrent; print its infohash.")
    mk.add_argument("file", type=Path)
    mk.add_argument("-o", "--output", type=Path, help="default FILE.torrent")
    mk.add_argument("--piece-length", type=_size, help="power of two, e.g. 262144 or 256KiB")
    mk.add_argument("--hybrid", action="store_true", help="v1+v2 hybrid torrent")
    fork = sub.add_parser("fork-server", help="fork agents for the local backend (internal)",
                          description="Fork agents on request (peer/forkserver.py).")
    fork.add_argument("--socket", required=True, help="abstract unix socket name")
    fork.add_argument("--data-dir", required=True, type=Path, help="exits when this is gone")
    fork.add_argument("--room", default="", help=argparse.SUPPRESS)  # argv area for children
    return parser


def _read_token(args: argparse.Namespace) -> Optional[str]:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror}") from exc
        if not token:
            raise UsageError(f"--token-file {args.token_file}: empty")
        return token
    return os.environ.get("MESHBED_TOKEN") or None


def _read_mesh_key(args: argparse.Namespace, token: Optional[str]) -> Optional[bytes]:
    """The mesh key, read like the token (a file or the environment, never an argument)."""
    if args.mesh_key_file is not None:
        try:
            key = args.mesh_key_file.read_bytes().strip()
        except OSError as exc:
            raise UsageError(f"--mesh-key-file {args.mesh_key_file}: {exc.strerror}") from exc
        if not key:
            raise UsageError(f"--mesh-key-file {args.mesh_key_file}: empty")
        return key
    env = os.environ.get("MESHBED_MESH_KEY")
    if env:
        return env.encode()
    return derive_mesh_key(token) if token else None


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def _setup_logging(args: argparse.Namespace) -> None:
    handler: logging.Handler
    if args.log_file is not None:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(args.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, args.log_level.upper()))


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _run_agent(args: argparse.Namespace, token: Optional[str]) -> int:
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    from peer import metainfo
    from peer.agent import Agent
    from peer.control import ControlServer
    from peer.metrics import new_registry
    from peer.shaping import LinkEmulator

    seeds = []
    for torrent, payload in zip(args.seed, args.file):
        try:
            seeds.append((metainfo.parse(torrent.read_bytes()), payload))
        except (OSError, metainfo.MetainfoError) as exc:
            raise UsageError(f"--seed {torrent}: {exc}") from exc
        if not payload.is_file():
            raise UsageError(f"--file {payload}: not a file")

    registry = new_registry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        try:
            collector(registry=registry)
        except ValueError:  # already registered by the engine
            pass
    link = LinkEmulator(
        up_bps=args.up, down_bps=args.down, latency_ms=args.latency, jitter_ms=args.jitter,
        loss=args.loss / 100.0,
    )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(
        data_dir=args.data_dir, registry=registry, link=link,
        listen_host=args.listen[0], listen_port=args.listen[1],
        node=args.node, group=args.group, mesh=args.mesh, hostile=args.hostile,
        mesh_key=args.mesh_key, access=args.access,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    control: Optional[ControlServer] = None
    try:
        await agent.start()
        control = ControlServer(
            agent, link, registry, data_dir=args.data_dir, token=token,
            host=args.api[0], port=args.api[1], on_stop=stop.set,
        )
        control.start()
        agent.own_ports.add(int(control.api.rpartition(":")[2]))  # never dialed via PEX
        for meta, payload in seeds:
            await agent.share(meta, payload)
            log.info("seeding %s (%s)", meta.name, meta.hexhash)
        if args.peer:
            agent.add_peers(list(args.peer))
        wire = _join(args.listen[0], agent.wire_port)
        if args.ready_file is not None:
            _write_atomic(args.ready_file, {"pid": os.getpid(), "api": control.api, "wire": wire})
        log.info(
            "agent %s ready: api %s wire %s%s", args.node or "-", control.api, wire,
            "" if token else " (no token: mutating API calls refused)",
        )
        await stop.wait()
        log.info("stopping")
    finally:
        if control is not None:
            await control.close()
        await agent.close()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if args.hostile and not args.i_know_this_is_a_test:
        raise UsageError("--hostile is a test-only mode: add --i-know-this-is-a-test")
    if len(args.seed) != len(args.file):
        raise UsageError("--seed and --file come in pairs (one --file per --seed)")
    token = _read_token(args)
    args.mesh_key = _read_mesh_key(args, token)
    _setup_logging(args)
    try:
        return asyncio.run(_run_agent(args, token))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        print(f"meshbed-peer: cannot start: {exc}", file=sys.stderr)
        return 1


def _cmd_make_torrent(args: argparse.Namespace) -> int:
    from peer import metainfo

    try:
        meta = metainfo.create(args.file, piece_length=args.piece_length, hybrid=args.hybrid)
    except metainfo.MetainfoError as exc:
        raise UsageError(str(exc)) from exc
    out: Path = args.output or args.file.with_name(args.file.name + ".torrent")
    out.write_bytes(meta.to_torrent_bytes())
    print(meta.hexhash)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "fork-server":
            from peer import forkserver

            return forkserver.serve(args.socket, args.data_dir)
        return _cmd_make_torrent(args)
    except UsageError as exc:
        print(f"meshbed-peer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
