"""`meshbed devices check INVENTORY`: reach each device over SSH; python, arch, disk, clock.

Exit 0 when every device is usable, 1 when some are not (named on stderr), 2 on a bad
inventory file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.table import Table

from orchestrator.errors import BackendUnavailable


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="reach every device; report python, arch, disk, clock skew")
    check.add_argument("inventory", metavar="INVENTORY", help="device inventory YAML")
    check.add_argument(
        "--timeout", type=float, default=10.0, help="SSH connect timeout per device, seconds (10)"
    )


def main(args: argparse.Namespace) -> int:
    from orchestrator.backends.ssh import SshBackend

    reason = SshBackend.unavailable_reason()
    if reason:
        raise BackendUnavailable(reason)
    from orchestrator.backends.ssh.check import check_inventory, size_text
    from orchestrator.inventory import load_inventory

    inventory = load_inventory(args.inventory)
    results = asyncio.run(check_inventory(inventory, connect_timeout=args.timeout))

    table = Table(title=f"devices in {args.inventory}")
    for col in ("device", "host", "profile", "reachable", "python", "arch", "free disk", "clock skew",
                "start", "shaping"):
        table.add_column(col, no_wrap=True)
    table.add_column("fit", min_width=24, overflow="fold")
    for r in results:
        skew = "-" if r.skew_seconds is None else f"{r.skew_seconds * 1000:+.0f} ms"
        free = size_text(r.free_bytes)
        if r.cap_bytes is not None and r.free_bytes is not None:
            free += f" (cap {size_text(r.cap_bytes)})"
        verdict = "[green]ok[/]" if r.usable else "[red]" + "; ".join(r.problems) + "[/]"
        if r.warnings:
            verdict += " [yellow](" + "; ".join(r.warnings) + ")[/]"
        table.add_row(
            r.name,
            r.host,
            r.profile,
            "[green]yes[/]" if r.reachable else "[red]no[/]",
            r.python or "-",
            r.arch or "-",
            free,
            skew,
            r.detach or "-",
            ("tc" if r.kernel_shaping else "agent") if r.reachable else "-",
            verdict,
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze into 80 columns
        console = Console(width=200)
    console.print(table)
    bad = [r for r in results if not r.usable]
    if bad:
        for r in bad:
            print(f"meshbed: device {r.name} is not usable: {'; '.join(r.problems)}", file=sys.stderr)
        return 1
    print(f"all {len(results)} devices usable")
    return 0
