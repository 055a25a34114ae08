"""Kernel shaping of containers from the host (no `tc` needed in the image).

Up = tbf on the container's eth0 (entered with ``nsenter -t PID -n``); down = tbf on the
host-side end of its veth pair (eth0's ``@ifN`` is the host's ifindex N). A restarted
container has a new veth, so the backend re-applies after every start.

Partitions: iptables rules in chains of this mesh's own, jumped to from DOCKER-USER only for
traffic inside this mesh's bridge (``-i BR -o BR``), so nothing else on the host is touched.
DOCKER-USER runs before Docker's ESTABLISHED accept, so open connections are cut too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

from orchestrator.backends import tc
from orchestrator.dockerlib import labels
from orchestrator.hostnet import iptables

_IFLINK = re.compile(r"^\d+:\s*eth0@if(\d+):")
_LINK = re.compile(r"^(\d+):\s*([^:@\s]+)")


def nsenter(pid: int) -> list[str]:
    return ["nsenter", "-t", str(pid), "-n"]


def kernel_rate_available() -> bool:
    found = tc.probe()
    return bool(found.get("root") and found.get("tbf"))


def kernel_delay_available() -> bool:
    return bool(tc.probe().get("netem"))


async def host_veth(pid: int) -> str:
    """Name of the host-side veth of the container whose init is ``pid``."""
    out = await tc.run([*nsenter(pid), "ip", "-o", "link", "show", "eth0"])
    m = _IFLINK.match(out.strip())
    if not m:
        raise RuntimeError(f"cannot find the peer of eth0 in {out.strip()!r}")
    index = m.group(1)
    for line in (await tc.run(["ip", "-o", "link", "show"])).splitlines():
        lm = _LINK.match(line)
        if lm and lm.group(1) == index:
            return lm.group(2)
    raise RuntimeError(f"no host interface with ifindex {index}")


async def shape(pid: int, up_bps: Optional[int], down_bps: Optional[int],
                host_dev: Optional[str] = None) -> None:
    """Cap the container's sending (eth0 egress) and receiving (host veth egress);
    ``host_dev`` when the caller knows the host-side veth, else it is looked up."""
    await _egress("eth0", up_bps, nsenter(pid))
    await _egress(host_dev or await host_veth(pid), down_bps, [])


async def _egress(dev: str, rate_bps: Optional[int], prefix: list[str]) -> None:
    """One `tc` call where no netem can be at the root (kernels without it): 2 processes
    per node instead of 4 adds up at 100 nodes."""
    if kernel_delay_available():  # a netem root may be there: tc.shape_egress keeps it
        await tc.shape_egress(dev, rate_bps, prefix=prefix)
    elif rate_bps is None:
        await tc.clear(dev, prefix=prefix)
    else:
        await tc.run([*prefix, *tc.tbf_args(dev, rate_bps)])


async def delay(pid: int, latency_ms: float, jitter_ms: float, loss: float) -> None:
    """netem on the container's eth0 (kernels that have it); keeps any tbf under it."""
    await tc.netem("eth0", latency_ms, jitter_ms, loss, prefix=nsenter(pid))


# --- partitions -------------------------------------------------------------------------


def partition_available() -> bool:
    found = tc.probe()
    return bool(found.get("root") and found.get("iptables") and iptables.bridged_iptables())


def partition_rules(
    mesh: str, bridge: str, sides: Sequence[Sequence[str]], ip_of: dict[str, str]
) -> tuple[list[str], str]:
    """(chain names, iptables-restore text) cutting traffic between ``sides``.

    Sources that must drop the same destinations share one chain, so a packet walks at most
    ~2N short rules instead of N^2. A node in no side keeps talking to everyone.
    """
    base = labels.chain_name(mesh)
    groups: dict[frozenset[str], list[str]] = {}
    members = [n for side in sides for n in side]
    for node in dict.fromkeys(members):
        mine = [i for i, side in enumerate(sides) if node in side]
        blocked = frozenset(
            n for i, side in enumerate(sides) if i not in mine for n in side if n != node
        )
        if blocked:
            groups.setdefault(blocked, []).append(node)
    chains = [base] + [f"{base}-{i}" for i in range(len(groups))]
    lines = ["*filter"] + [f":{c} - [0:0]" for c in chains]
    for i, (blocked, sources) in enumerate(groups.items()):
        sub = f"{base}-{i}"
        for dst in sorted(blocked):
            lines.append(f"-A {sub} -d {ip_of[dst]}/32 -j DROP")
        for src in sources:
            lines.append(f"-A {base} -s {ip_of[src]}/32 -j {sub}")
    lines.append(f"-I DOCKER-USER -i {bridge} -o {bridge} -j {base}")
    lines += ["COMMIT", ""]
    return chains, "\n".join(lines)


async def apply_partition(text: str) -> None:
    await iptables.restore(text)


async def remove_partition(mesh: str, bridge: str) -> list[str]:
    """Drop the jump and the mesh's chains; idempotent, works from names alone. Returns
    the chains that could not be removed."""
    base = labels.chain_name(mesh)
    await iptables.delete_rule(["DOCKER-USER", "-i", bridge, "-o", bridge, "-j", base])
    # the base chain jumps to the others: deleted first
    return await iptables.remove_chains(base, first=base)
