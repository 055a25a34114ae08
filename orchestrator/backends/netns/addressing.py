"""Pick a private subnet for a mesh that collides with no route or address on the host."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable

PREFIX = 20  # 4094 addresses; a Linux bridge takes at most 1024 ports anyway
MAX_NODES = 1000
# 10.64.0.0 .. 10.254.255.255 in /20 steps; Docker and most LANs live elsewhere.
_FIRST, _LAST = 64, 254


def candidates(tag: str) -> list[ipaddress.IPv4Network]:
    """All candidate /20s, starting at a place derived from the mesh tag (spreads meshes)."""
    nets = [
        ipaddress.IPv4Network(f"10.{a}.{b}.0/{PREFIX}")
        for a in range(_FIRST, _LAST + 1)
        for b in range(0, 256, 16)
    ]
    start = int(tag, 16) % len(nets)
    return nets[start:] + nets[:start]


def used_networks() -> list[ipaddress.IPv4Network]:
    """Networks of every IPv4 route and interface address on the host."""
    out: list[ipaddress.IPv4Network] = []
    for cmd in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr"]):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
            data = json.loads(text or "[]")
        except (OSError, subprocess.TimeoutExpired, ValueError):
            continue
        for item in data:
            if "dst" in item:
                dst = item["dst"]
                if dst in ("default", "0.0.0.0/0"):
                    continue
                try:
                    out.append(ipaddress.IPv4Network(dst, strict=False))
                except ValueError:
                    continue
            for info in item.get("addr_info", []):
                try:
                    out.append(
                        ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
                    )
                except (KeyError, ValueError):
                    continue
    return out


def choose(
    tag: str, used: Iterable[ipaddress.IPv4Network], taken: Iterable[str] = ()
) -> ipaddress.IPv4Network:
    """The first candidate overlapping nothing in ``used`` nor the subnets in ``taken``
    (other meshes' recorded subnets, which may not be up yet)."""
    blocked = list(used) + [ipaddress.IPv4Network(t) for t in taken]
    for net in candidates(tag):
        if not any(net.overlaps(b) for b in blocked):
            return net
    raise RuntimeError("no free private /20 in 10.64.0.0-10.254.255.255 for the mesh bridge")


def host_address(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The bridge's own address (.1): the orchestrator reaches the agents from it."""
    return net.network_address + 1


def node_address(net: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    if not 0 <= index < min(MAX_NODES, net.num_addresses - 3):
        raise ValueError(f"node index {index} does not fit in {net}")
    return net.network_address + 2 + index
