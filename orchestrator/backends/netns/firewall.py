"""iptables rules scoped to one mesh's bridge.

Docker sets the FORWARD policy to DROP and br_netfilter sends bridged IPv4 through
iptables, so a mesh needs ``-i BR -o BR -j ACCEPT``. Partitions are DROP rules in the
mesh's own chains matched by bridge port (physdev), so they touch no other traffic and
the host keeps reaching every agent (host<->node traffic is not forwarded).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.hostnet.iptables import (  # noqa: F401 - the netns backend's toolbox
    bridged_iptables,
    delete_rule,
    insert_rule,
    remove_chains,
    restore,
)


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
    await restore(partition_rules(tag, sides))
