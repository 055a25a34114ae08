"""The netns mesh's subnet: a /20 from the host's netns pool (orchestrator.hostnet.subnets)
that collides with no route or address on the host, nor with another mesh's record."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from orchestrator.hostnet import subnets

PREFIX = 20  # 4094 addresses; a Linux bridge takes at most 1024 ports anyway
MAX_NODES = 1000
used_networks = subnets.host_networks


def candidates(tag: str) -> list[ipaddress.IPv4Network]:
    """All candidate /20s, starting at a place derived from the mesh tag (spreads meshes)."""
    return subnets.candidates(subnets.NETNS_POOL, PREFIX, int(tag, 16))


def choose(
    tag: str, used: Iterable[ipaddress.IPv4Network], taken: Iterable[str] = ()
) -> ipaddress.IPv4Network:
    """The first candidate overlapping nothing in ``used`` nor the subnets in ``taken``
    (other meshes' recorded subnets, which may not be up yet)."""
    blocked = list(used) + [ipaddress.IPv4Network(t) for t in taken]
    return subnets.choose(subnets.NETNS_POOL, PREFIX, int(tag, 16), blocked)


def host_address(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The bridge's own address (.1): the orchestrator reaches the agents from it."""
    return net.network_address + 1


def node_address(net: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    if not 0 <= index < min(MAX_NODES, net.num_addresses - 3):
        raise ValueError(f"node index {index} does not fit in {net}")
    return net.network_address + 2 + index
