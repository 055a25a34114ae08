"""The subnets a Docker engine already uses (bridge, overlay and macvlan networks alike):
what a new mesh network must not overlap."""

from __future__ import annotations

import ipaddress
from typing import Any


def engine_subnets(client: Any) -> list[ipaddress.IPv4Network]:
    """IPv4 subnets of every network the engine lists (a swarm manager lists the overlays)."""
    nets: list[ipaddress.IPv4Network] = []
    for info in client.api.networks():
        for cfg in (info.get("IPAM") or {}).get("Config") or []:
            try:
                net = ipaddress.ip_network(cfg.get("Subnet", ""), strict=False)
            except ValueError:
                continue
            if isinstance(net, ipaddress.IPv4Network):
                nets.append(net)
    return nets
