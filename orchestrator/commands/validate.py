"""`meshbed validate TOPO.yaml`: parse and check a topology, print a summary.

Exit 0 when the file is valid (backend availability problems are only warnings here:
it is `up` that refuses), 2 with one ``FILE:LINE: message`` line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, TextIO

from orchestrator.bounds import topology_bounds
from orchestrator.errors import InputError
from orchestrator.loader import load_topology
from orchestrator.model import FetchEvent, Topology
from orchestrator.selectors import describe
from orchestrator.units import format_duration, format_rate, format_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", metavar="TOPO.yaml", help="the topology file to check")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing when the file is valid"
    )


def refuse_inventory(path: Path) -> None:
    """A device inventory given where a topology belongs: say what it is and what reads it
    (the loader alone would only say "unknown key 'devices'")."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return  # the loader reports it properly
    keys = {ln.split(":", 1)[0]: i for i, ln in enumerate(lines, 1) if re.match(r"[a-z_]+:", ln)}
    if "devices" in keys and not {"name", "groups"} & set(keys):
        raise InputError(f"this is a device inventory, not a topology: `meshbed devices check {path}` "
                         f"checks it; a topology names it with `inventory: {path}`", path, keys["devices"])


def main(args: argparse.Namespace) -> int:
    refuse_inventory(Path(args.topology))
    topology = load_topology(args.topology)
    if "swarm" in topology.backends_used():  # placement no swarm node meets: exit 2
        from orchestrator.backends.swarm import check_placement

        check_placement(topology)
    if "ssh" in topology.backends_used():  # client nodes: asks their devices over ssh (exit 2)
        from orchestrator.backends.ssh.clients import check_devices_now

        check_devices_now(topology)
    warnings = backend_warnings(topology)
    if not args.quiet:
        print_summary(topology, sys.stdout)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def backend_warnings(topology: Topology) -> list[str]:
    """Why a backend this topology uses cannot run on this host, and settings a backend
    will ignore (each a one-liner)."""
    out: list[str] = []
    for name in topology.backends_used():
        reason: Optional[str]
        try:
            from orchestrator import backends
            from orchestrator.backends.base import Capability

            cls = backends.get(name)
            caps = getattr(cls, "capabilities", None)
            if isinstance(caps, Capability) and not caps & Capability.RESOURCES:
                for g in topology.groups:
                    if g.backend == name and (g.resources.cpus or g.resources.memory_bytes):
                        out.append(
                            f"group {g.name}: backend {name} ignores resources (cpus, memory)"
                        )
            reason = cls.unavailable_reason()
        except ImportError as exc:
            reason = f"not available in this build ({exc.name or exc})"
        except Exception as exc:  # a backend's own check failing is itself worth a warning
            reason = f"availability check failed: {exc}"
        if reason:
            out.append(f"backend {name}: {' '.join(str(reason).split())} (`up` will refuse)")
    return out


def _link_text(up: Optional[int], down: Optional[int], latency: float, loss: float, jitter: float = 0.0) -> str:
    parts = [f"up {format_rate(up)}", f"down {format_rate(down)}"]
    if latency or jitter:
        parts.append(f"latency {format_duration(latency / 1000.0)}"
                     + (f" ±{format_duration(jitter / 1000.0)} jitter" if jitter else ""))
    if loss:
        parts.append(f"loss {loss * 100:g}%")
    return ", ".join(parts)


def print_summary(topology: Topology, out: TextIO) -> None:
    where = f" ({topology.source})" if topology.source else ""
    w = out.write
    backends = ", ".join(topology.backends_used()) or topology.backend
    w(f"topology {topology.name}{where}\n")
    w(
        f"  backend: {backends}; strategy: {topology.strategy}; seed: {topology.seed}; "
        f"nodes: {len(topology.nodes)}; timeout: {format_duration(topology.timeout)}"
        + ("; monitoring: on" if topology.monitoring else "")
        + "\n"
    )
    width = max((len(g.name) for g in topology.groups), default=5)
    w("groups:\n")
    for g in topology.groups:
        noun = "node" if g.count == 1 else "nodes"
        extra = "".join(
            f"; {k}: {', '.join(map(str, v)) if isinstance(v, tuple) else v}"
            for k, v in g.options.items() if v
        )
        if g.resources.cpus or g.resources.memory_bytes:
            res = []
            if g.resources.cpus:
                res.append(f"{g.resources.cpus:g} cpus")
            if g.resources.memory_bytes:
                res.append(format_size(g.resources.memory_bytes))
            extra += f"; resources: {', '.join(res)}"
        link = _link_text(g.link.up_bps, g.link.down_bps, g.link.latency_ms, g.link.loss, g.link.jitter_ms)
        w(f"  {g.name:<{width}}  {g.count:>4} {noun:<5}  {g.backend:<6}  {link}{extra}\n")
    bounds = topology_bounds(topology)
    w("contents:\n" if topology.contents else "contents: none\n")
    for c in topology.contents:
        b = bounds[c.name]
        kind = "synthetic" if c.synthetic else f"file {c.path}"
        if c.magnet_of is not None:
            kind = f"by magnet link of {c.magnet_of}"
        size = format_size(b["size"]) if b["size"] is not None else "?"
        chunks = b["chunks"] if b["chunks"] is not None else "?"
        fetchers = topology.fetchers(c.name)
        w(
            f"  {c.name}: {size} {kind}, chunk {format_size(c.chunk_size)} x {chunks}; "
            f"seeders: {describe(c.seeders, topology)}; "
            f"fetchers: {describe(fetchers, topology) if fetchers else 'none'}\n"
        )
        if b["fetchers"]:
            lower = b["lower_bound_seconds"]
            cs = b["client_server_bound_seconds"]
            w(
                f"    lower bound {_bound(lower)}, client-server bound {_bound(cs)}"
                + (
                    " (strategy client-server: fetchers do not upload)"
                    if topology.strategy == "client-server"
                    else ""
                )
                + "\n"
            )
    fetches = [ev for ev in topology.scenario if isinstance(ev, FetchEvent)]
    counts: dict[str, int] = {}
    for ev in topology.scenario:
        kind = type(ev).__name__.replace("Event", "").lower()
        counts[kind] = counts.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    noun = "event" if len(topology.scenario) == 1 else "events"
    w(f"scenario: {len(topology.scenario)} {noun}" + (f" ({summary})" if summary else "") + "\n")
    if not fetches:
        w("  no fetch event: `up` deploys and seeds it; `run` has nothing to measure\n")
    expects = []
    if topology.expect.all_complete_within is not None:
        expects.append(
            f"all complete within {format_duration(topology.expect.all_complete_within)}"
        )
    if topology.expect.min_efficiency is not None:
        expects.append(f"efficiency at least {topology.expect.min_efficiency:.2f}")
    w(f"expect: {'; '.join(expects) if expects else 'nothing (run exits 0 when it finishes)'}\n")
    if topology.inventory is not None:
        w(f"inventory: {topology.inventory.path} ({len(topology.inventory.devices)} devices)\n")
    w("ok\n")


def _bound(seconds: Optional[float]) -> str:
    if seconds is None:
        return "none (uncapped links)"
    return f"{seconds:.2f}s" if seconds < 120 else f"{format_duration(seconds)} ({seconds:.0f}s)"
