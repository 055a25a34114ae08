"""Pure parts of the docker backend: names, subnets, addresses, partition rules."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from orchestrator.backends.docker import networks, shaping
from orchestrator.dockerlib import labels
from orchestrator.errors import DeployError
from orchestrator.hostnet import subnets


class FakeClient:
    """Only what networks.free_subnets reads: the docker networks' IPAM configs."""

    def __init__(self, subnets: list[str]) -> None:
        self.api = self
        self._subnets = subnets

    def networks(self, **_: Any) -> list[dict[str, Any]]:
        return [{"IPAM": {"Config": [{"Subnet": s}]}} for s in self._subnets]


def test_names_fit_linux_and_iptables_limits() -> None:
    mesh = "a" * 32  # the longest mesh name the loader accepts
    assert len(labels.bridge_name(mesh)) <= 15
    assert len(labels.chain_name(mesh) + "-99") <= 28
    assert labels.container_name("m", "leechers-3") == "meshbed-m-leechers-3"
    assert labels.bridge_name("m1") != labels.bridge_name("m2")
    assert labels.mesh_filter("m") == {"label": ["meshbed.managed=1", "meshbed.mesh=m"]}


def test_free_subnets_avoid_docker_networks_and_host_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = networks.free_subnets(FakeClient([]), "m")[0]
    host = ipaddress.IPv4Network(str(taken.network_address) + "/24")  # a host route inside it
    monkeypatch.setattr(subnets, "host_networks", lambda: [host])
    docker_net = networks.free_subnets(FakeClient([]), "m")[0]
    free = networks.free_subnets(FakeClient([str(docker_net)]), "m")
    assert taken not in free and docker_net not in free
    assert all(f.prefixlen == networks.PREFIX and f.subnet_of(networks.POOL) for f in free)
    assert not any(f.overlaps(host) or f.overlaps(docker_net) for f in free)


def test_a_host_route_covering_the_pool_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subnets, "host_networks", lambda: [ipaddress.IPv4Network("10.0.0.0/8")])
    assert networks.free_subnets(FakeClient([]), "m") == []


def test_node_addresses_skip_the_gateway_and_stop_at_the_subnet() -> None:
    addrs = networks.node_addresses("10.210.4.0/22", 3)
    assert addrs == ["10.210.4.2", "10.210.4.3", "10.210.4.4"]
    assert len(networks.node_addresses("10.210.4.0/22", 1021)) == 1021
    with pytest.raises(DeployError):
        networks.node_addresses("10.210.4.0/22", 1022)


def _drops(text: str) -> set[tuple[str, str]]:
    """(src, dst) pairs the rules drop: follow base -> per-group chain -> DROP."""
    jumps: dict[str, list[str]] = {}
    drops: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["-A"] and "-s" in parts:
            jumps.setdefault(parts[parts.index("-j") + 1], []).append(parts[parts.index("-s") + 1])
        elif parts[:1] == ["-A"] and "-d" in parts:
            drops.setdefault(parts[1], []).append(parts[parts.index("-d") + 1])
    return {(s.split("/")[0], d.split("/")[0]) for chain, srcs in jumps.items()
            for s in srcs for d in drops.get(chain, [])}


def test_partition_rules_cut_exactly_between_sides() -> None:
    ip = {f"n{i}": f"10.0.0.{i}" for i in range(6)}
    chains, text = shaping.partition_rules("m", "mbdx", [["n0", "n1"], ["n2", "n3"], ["n4"]], ip)
    got = _drops(text)
    sides = [{"n0", "n1"}, {"n2", "n3"}, {"n4"}]
    want = {(ip[a], ip[b]) for i, sa in enumerate(sides) for j, sb in enumerate(sides) if i != j
            for a in sa for b in sb}
    assert got == want
    assert all(ip["n5"] not in pair for pair in got)  # in no side: talks to everyone
    assert "-I DOCKER-USER -i mbdx -o mbdx -j " + labels.chain_name("m") in text
    assert chains[0] == labels.chain_name("m") and len(chains) == 4  # base + one per side
    # rules grow linearly: sources with the same blocked set share a chain
    big = {f"n{i}": f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)}
    _, text = shaping.partition_rules("m", "mbdx", [list(big)[:50], list(big)[50:]], big)
    assert sum(line.startswith("-A") for line in text.splitlines()) == 200
