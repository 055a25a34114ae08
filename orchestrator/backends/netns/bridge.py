"""The mesh's Linux bridge and one veth pair per node (host side on the bridge, `eth0` inside)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from orchestrator.backends.netns.namespaces import batch

NODE_DEV = "eth0"  # the node-side end of the veth, inside the namespace


def bridge_name(tag: str) -> str:
    return f"mb-{tag}"


def veth_name(tag: str, index: int) -> str:
    """Host-side veth name, <= 15 characters for indexes below 100000."""
    name = f"mb{tag}v{index}"
    if len(name) > 15:
        raise ValueError(f"interface name {name!r} is longer than 15 characters")
    return name


def exists(dev: str) -> bool:
    return os.path.exists(f"/sys/class/net/{dev}")


def _bridge_lines(name: str, address: str, prefixlen: int) -> list[str]:
    return [
        f"link add name {name} type bridge stp_state 0 forward_delay 0",
        f"addr add {address}/{prefixlen} dev {name}",
        f"link set {name} up",
    ]


async def create_bridge(name: str, address: str, prefixlen: int) -> None:
    """Create the bridge with the host's address on it (idempotent)."""
    if not exists(name):
        await batch(_bridge_lines(name, address, prefixlen))


def create_bridge_sync(name: str, address: str, prefixlen: int) -> None:
    """The same, blocking: used while holding the subnet lock (a few milliseconds)."""
    if exists(name):
        return
    body = "".join(f"{line}\n" for line in _bridge_lines(name, address, prefixlen))
    res = subprocess.run(["ip", "-batch", "-"], input=body.encode(), capture_output=True,
                         timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"ip: creating bridge {name}: {res.stderr.decode().strip()}")


async def add_ports(bridge: str, pairs: Sequence[tuple[str, str]]) -> None:
    """For each (host veth, namespace): a veth pair with ``eth0`` inside the namespace,
    the host end enslaved to the bridge and up. Pairs already there are skipped."""
    fresh = [(veth, ns) for veth, ns in pairs if not exists(veth)]
    lines: list[str] = []
    for veth, ns in fresh:
        lines.append(f"link add name {veth} type veth peer name {NODE_DEV} netns {ns}")
        # No IPv6 link-local address: no DAD/router solicitations flooding the bridge.
        lines.append(f"link set {veth} addrgenmode none")
        lines.append(f"link set {veth} master {bridge} up")
    await batch(lines)


async def configure_node(ns: str, address: str, prefixlen: int) -> None:
    """Address and bring up the node side. No default route: traffic stays on the bridge."""
    await batch(
        [
            f"addr replace {address}/{prefixlen} dev {NODE_DEV}",
            f"link set {NODE_DEV} addrgenmode none",
            f"link set {NODE_DEV} up",
            "link set lo up",
        ],
        ns=ns,
    )


async def delete_links(names: Sequence[str]) -> None:
    """Delete interfaces that exist (veths go in pairs; deleting one end removes both)."""
    await batch((f"link del {n}" for n in names if exists(n)), force=True)
