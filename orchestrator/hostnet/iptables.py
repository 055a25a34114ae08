"""iptables on this host: the few operations meshes need, for every backend alike.

Chains and rules are always a mesh's own (named after it), so removing them touches no
other traffic. Async functions for the backends; ``rules_mentioning`` is synchronous for
leftover checks (tests, `doctor`). Each call waits for the xtables lock (``-w``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Optional

from orchestrator.backends.tc import run

IPT = ["iptables", "-w", "10"]


def bridged_iptables() -> bool:
    """Whether bridged IPv4 frames go through iptables (br_netfilter loaded, hook on)."""
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


async def has_rule(spec: Sequence[str]) -> bool:
    try:
        await run([*IPT, "-C", *spec])
    except RuntimeError:
        return False
    return True


async def insert_rule(spec: Sequence[str]) -> None:
    """Insert at the top of the chain (``spec[0]``), once."""
    if not await has_rule(spec):
        await run([*IPT, "-I", spec[0], "1", *spec[1:]])


async def delete_rule(spec: Sequence[str]) -> None:
    """Delete every copy of the rule; fine when it is not there."""
    for _ in range(20):
        try:
            await run([*IPT, "-D", *spec])
        except RuntimeError:
            return


async def chains(prefix: str = "") -> list[str]:
    """Chains of the filter table (those starting with ``prefix``)."""
    out = await run([*IPT, "-S"])
    return [line.split()[1] for line in out.splitlines()
            if line.startswith("-N ") and line.split()[1].startswith(prefix)]


async def restore(text: str) -> None:
    """Add rules/chains from iptables-restore input, leaving everything else as it is."""
    await run(["iptables-restore", "-w", "10", "--noflush"], input=text.encode())


async def remove_chains(prefix: str, *, keep: Optional[str] = None, first: str = "") -> list[str]:
    """Flush, then delete the chains starting with ``prefix`` (``keep`` only flushed; the
    chain ``first``, which jumps to the others, deleted first). Returns the chains that
    are still there afterwards (other than ``keep``)."""
    mine = await chains(prefix)
    for c in mine:
        await run([*IPT, "-F", c], check=False)
    for c in sorted(mine, key=lambda c: c != first):
        if c != keep:
            await run([*IPT, "-X", c], check=False)
    return [c for c in await chains(prefix) if c != keep]


def rules_mentioning(words: Sequence[str], tables: Sequence[str] = ("filter", "nat")) -> list[str]:
    """Rules (and chain definitions) of ``tables`` naming any of ``words``."""
    found: list[str] = []
    for table in tables:
        try:
            out = subprocess.run(["iptables", "-w", "5", "-t", table, "-S"], capture_output=True,
                                 text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        found += [line for line in out.splitlines() if any(w in line for w in words)]
    return found
