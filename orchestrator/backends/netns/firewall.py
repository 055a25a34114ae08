"""iptables rules scoped to one mesh's bridge.

Docker sets the FORWARD policy to DROP and br_netfilter sends bridged IPv4 through
iptables, so a mesh needs ``-i BR -o BR -j ACCEPT``. Partitions are DROP rules in the
mesh's own chains matched by bridge port (physdev), so they touch no other traffic and
the host keeps reaching every agent (host<->node traffic is not forwarded).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.backends.tc import run

IPT = ["iptables", "-w", "10"]


def accept_rule(bridge: str, comment: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment,
            "-j", "ACCEPT"]


def jump_rule(bridge: str, chain: str, comment: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment,
            "-j", chain]


def partition_chain(tag: str) -> str:
    return f"MBP-{tag}"


def side_chain(tag: str, side: int) -> str:
    return f"MBP-{tag}-{side}"


async def has_rule(spec: Sequence[str]) -> bool:
    try:
        await run([*IPT, "-C", *spec])
    except RuntimeError:
        return False
    return True


async def insert_rule(spec: Sequence[str]) -> None:
    """Insert at the top of the chain, once."""
    if not await has_rule(spec):
        await run([*IPT, "-I", spec[0], "1", *spec[1:]])


async def delete_rule(spec: Sequence[str]) -> None:
    """Delete every copy of the rule; fine when it is not there."""
    for _ in range(20):
        try:
            await run([*IPT, "-D", *spec])
        except RuntimeError:
            return


async def chains() -> list[str]:
    out = await run([*IPT, "-S"])
    return [line.split()[1] for line in out.splitlines() if line.startswith("-N ")]


async def rules_mentioning(text: str) -> list[str]:
    out = await run([*IPT, "-S"])
    return [line for line in out.splitlines() if text in line]


def bridged_iptables() -> bool:
    """Whether bridged IPv4 frames go through iptables (br_netfilter loaded and on)."""
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


async def ensure_chain(chain: str) -> None:
    if chain not in await chains():
        await run([*IPT, "-N", chain])


def partition_rules(tag: str, sides: Sequence[Sequence[str]]) -> str:
    """iptables-restore input: frames entering from a port of side i are dropped when they
    leave through a port of any other side. Ports in no side are untouched."""
    main = partition_chain(tag)
    lines = ["*filter", f":{main} - [0:0]"]
    for i in range(len(sides)):
        lines.append(f":{side_chain(tag, i)} - [0:0]")
    for i, side in enumerate(sides):
        for port in side:
            lines.append(f"-A {main} -m physdev --physdev-in {port} -j {side_chain(tag, i)}")
        for j, other in enumerate(sides):
            if j == i:
                continue
            for port in other:
                lines.append(f"-A {side_chain(tag, i)} -m physdev --physdev-out {port} -j DROP")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


async def apply_partition(tag: str, sides: Sequence[Sequence[str]]) -> None:
    await run(["iptables-restore", "-w", "10", "--noflush"],
              input=partition_rules(tag, sides).encode())


async def remove_chains(prefix: str, *, keep: str | None = None) -> None:
    """Flush and delete chains starting with ``prefix`` (except ``keep``, only flushed)."""
    mine = [c for c in await chains() if c.startswith(prefix)]
    for c in mine:
        await run([*IPT, "-F", c], check=False)
    for c in mine:
        if c != keep:
            await run([*IPT, "-X", c], check=False)
