"""`meshbed devices check INVENTORY`: reach each device over SSH; python, arch, disk, clock.

One line per device on stdout, verdict first (``ok`` or ``REFUSED`` with the reasons), so it
reads the same on a terminal, in a pipe and in CI logs. Exit 0 when every device is usable,
1 when some are not (named once more on stderr), 2 on a bad inventory file or option.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from orchestrator.errors import BackendUnavailable, InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="reach every device; report python, arch, disk, clock skew")
    check.add_argument("inventory", metavar="INVENTORY", help="device inventory YAML")
    check.add_argument(
        "--timeout", type=float, default=10.0, help="SSH connect timeout per device, seconds (10)"
    )
    check.add_argument(
        "--need", default="0", metavar="SIZE",
        help="refuse devices with less free space than this in their data dir, e.g. 200MiB (0)",
    )


def main(args: argparse.Namespace) -> int:
    from orchestrator.backends.ssh import SshBackend
    from orchestrator.units import parse_size

    try:
        need = parse_size(args.need)
    except ValueError as exc:
        raise InputError(f"--need: {exc}") from None
    reason = SshBackend.unavailable_reason()
    if reason:
        raise BackendUnavailable(reason)
    from orchestrator.backends.ssh.check import check_inventory, summary_line
    from orchestrator.inventory import load_inventory

    inventory = load_inventory(args.inventory)
    results = asyncio.run(check_inventory(inventory, connect_timeout=args.timeout, need_bytes=need))
    for r in results:
        print(summary_line(r))
    bad = [r.name for r in results if not r.usable]
    if bad:
        print(f"meshbed: {len(bad)} of {len(results)} devices not usable: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"all {len(results)} devices usable")
    return 0
